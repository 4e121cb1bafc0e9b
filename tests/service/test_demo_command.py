"""``gdpr-gateway demo`` starts, answers a PATCH, stops on SIGTERM, and keeps its log."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from service.cli import main as cli_main


def free_block() -> int:
    """A port P with P..P+4 all free (the gateway and its four emulators).

    Chosen below Linux's ephemeral range (32768 and up), so that no outgoing connection
    can take one of them between this check and the server's bind."""
    for _ in range(200):
        base = random.randint(20000, 32000)
        sockets = []
        try:
            for port in range(base, base + 5):
                s = socket.socket()
                sockets.append(s)  # closed below even when its bind fails
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free block of five ports")


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the demo exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the demo did not become ready")


def request(port: int, method: str, path: str, body: dict[str, object] | None,
            token: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "X-Purpose": "customer_service",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def run_demo(port: int, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", "demo", "--port", str(port),
         "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=20)
    return proc.returncode, out


def test_demo_serves_a_patch_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_block()
    state = tmp_path / "state"
    proc = run_demo(port, state)
    try:
        wait_ready(port, proc)
        status, body = request(port, "PATCH", "/v1/systems/billbee/customers/1002",
                               {"Tel1": "+49 30 1357913"}, "demo-editor")
        assert status == 200 and body["applied"] is True
        status, body = request(port, "PATCH", "/v1/systems/billbee/customers/1001",
                               {"Tel1": "+49 30 1357913"}, "demo-editor")
        assert status == 409 and body["code"] == "customer_archived"
        with urllib.request.urlopen(f"http://127.0.0.1:{port + 2}/_emulator/stats") as r:
            assert json.loads(r.read())["requests"]["PUT"] == 1
    finally:
        code, out = stop(proc)
    assert code == 0
    assert f"http://127.0.0.1:{port}" in out
    assert "demo-editor" in out and "demo-privacy" in out
    assert (state / "audit.db").exists()

    # a second run continues the same audit log, and the chain verifies from the CLI
    proc = run_demo(port, state)
    try:
        wait_ready(port, proc)
        status, body = request(port, "GET", "/v1/audit/verify", None, "demo-auditor")
        assert status == 200 and body["ok"] is True
        assert int(body["entries"]) >= 3  # intent, outcome, the archived refusal
    finally:
        code, _ = stop(proc)
    assert code == 0
    assert cli_main(["audit", "verify", "--state-dir", str(state)]) == 0
