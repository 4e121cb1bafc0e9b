"""Headless Chromium driven through the Chrome DevTools Protocol, with aiohttp only.

Start: ``async with Browser.launch(tmp_path) as browser: page = await browser.new_page()``.
The browser runs in a process group of its own and is always ended on exit (SIGTERM to
the group, then SIGKILL), so no renderer or zygote process outlives a test. Every wait is
bounded; a wait that runs out raises ``TimeoutError`` naming what it waited for.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
MISSING_MESSAGE = f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)"

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
)


class CDPError(RuntimeError):
    """The browser answered a command with an error, or a script threw."""


#: what Chromium answers an evaluation that a navigation overtook: the page is changing,
#: not failing (``/ui`` forwarding to ``/ui/``, say), so a poll evaluates again
_NAVIGATING = ("Inspected target navigated or closed", "Execution context was destroyed",
               "Cannot find context with specified id")  # fmt: skip


class Page:
    """One page target: commands in order, events kept for later inspection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, seconds: float) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._seconds = seconds
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; events that arrive meanwhile go to ``events``."""
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        async with asyncio.timeout(self._seconds):
            while True:
                message = await self._ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise CDPError(f"the DevTools connection closed during {method}")
                data = json.loads(message.data)
                if data.get("id") == ident:
                    if "error" in data:
                        raise CDPError(f"{method}: {data['error'].get('message')}")
                    result: dict[str, Any] = data.get("result", {})
                    return result
                if "method" in data:
                    self.events.append(data)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        answer = await self.send(
            "Runtime.evaluate",
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"script failed: {text}")
        return answer.get("result", {}).get("value")

    async def wait_for(self, expression: str, *, seconds: float = 10.0) -> Any:
        """Poll until ``expression`` is truthy; its value. ``TimeoutError`` otherwise. An
        evaluation a navigation overtook counts as not yet; any other error is raised."""
        async with asyncio.timeout(seconds):
            while True:
                try:
                    value = await self.evaluate(expression)
                except CDPError as exc:
                    if not any(marker in str(exc) for marker in _NAVIGATING):
                        raise
                    value = None  # a navigation overtook it: the next page decides
                if value:
                    return value
                await asyncio.sleep(0.05)

    async def navigate(self, url: str, *, seconds: float = 10.0) -> None:
        answer = await self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise CDPError(f"navigation failed: {answer['errorText']}")
        await self.wait_for("document.readyState === 'complete'", seconds=seconds)

    async def screenshot(self, path: Path) -> bytes:
        answer = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(answer["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data

    def problems(self) -> list[str]:
        """Script errors, console errors and refused loads (CSP included) seen so far."""
        found: list[str] = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(f"exception: {details.get('text')}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error":
                    url = entry.get("url") or ""
                    found.append(f"{entry.get('source')}: {entry.get('text')} [{url}]")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append("console.error called")
        return found


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], endpoint: str, *, seconds: float):
        self._process = process
        self.endpoint = endpoint  # ws://127.0.0.1:PORT/devtools/browser/ID
        self._seconds = seconds
        self._session = aiohttp.ClientSession()
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []

    @property
    def pid(self) -> int:
        """The browser's process id (also its process group id)."""
        return self._process.pid

    @classmethod
    @asynccontextmanager
    async def launch(cls, tmp_dir: Path, *, seconds: float = 10.0) -> AsyncIterator[Browser]:
        """Chromium on a fresh profile under ``tmp_dir``; ended when the block exits.
        ``seconds`` bounds the start and every DevTools command."""
        if not chromium_present():
            raise FileNotFoundError(MISSING_MESSAGE)
        profile = tmp_dir / "chromium-profile"
        log_path = tmp_dir / "chromium-stderr.log"
        process = await asyncio.to_thread(_spawn, profile, log_path)
        browser: Browser | None = None
        try:
            endpoint = await _endpoint(process, log_path, seconds)
            browser = cls(process, endpoint, seconds=seconds)
            yield browser
        finally:
            if browser is not None:
                await browser._disconnect()
            await asyncio.to_thread(_end, process)
            await asyncio.to_thread(shutil.rmtree, profile, ignore_errors=True)

    async def new_page(self) -> Page:
        """A new page target (about:blank) with the Page, Runtime and Log domains on."""
        http = self.endpoint.replace("ws://", "http://").split("/devtools/")[0]
        async with asyncio.timeout(self._seconds):
            async with self._session.put(f"{http}/json/new?about:blank") as response:
                response.raise_for_status()
                target = await response.json()
            ws = await self._session.ws_connect(
                target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024
            )
        self._sockets.append(ws)
        page = Page(ws, seconds=self._seconds)
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page

    async def _disconnect(self) -> None:
        """Ask the browser to quit (it then ends and reaps its own children), close up."""
        for ws in self._sockets:
            with suppress(Exception):
                await ws.close()
        with suppress(Exception):
            async with asyncio.timeout(self._seconds):
                ws = await self._session.ws_connect(self.endpoint)
                await ws.send_json({"id": 1, "method": "Browser.close"})
                await ws.receive()
                await ws.close()
        await self._session.close()


def chromium_present() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def _spawn(profile: Path, log_path: Path) -> subprocess.Popen[bytes]:
    profile.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603  # a fixed executable and constant flags, no shell
            [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # its own process group: ended as a whole
        )


async def _endpoint(process: subprocess.Popen[bytes], log_path: Path, seconds: float) -> str:
    """The browser's DevTools websocket address, read from its stderr."""
    async with asyncio.timeout(seconds):
        while True:
            text = await asyncio.to_thread(log_path.read_text, encoding="utf-8", errors="replace")
            found = _LISTENING.search(text)
            if found:
                return found.group(1)
            if process.poll() is not None:
                raise CDPError(f"chromium exited with status {process.returncode} at start")
            await asyncio.sleep(0.05)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Wait for the browser to exit after ``Browser.close``; else SIGTERM it, then SIGKILL
    its whole process group. The leader goes first and alone on purpose: Chromium reaps
    its own children on a clean exit, while children orphaned by a killed leader are left
    to PID 1, which in some containers never reaps them (zombies)."""
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5.0)
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5.0)
    # anything of the group still running after its leader is gone: end it
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
