"""Real processes for the operations tests: ``gdpr-gateway emulate`` and ``serve``.

Built on the serve test's config writer; everything talks HTTP on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.registry import SYSTEMS
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import wait_port, write_config


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[dict[str, str]]:
    """The four emulators in a process of their own; yields their base URLs."""
    base = free_block()
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", "emulate", "--base-port", str(base), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        for i in range(1, 5):
            wait_port(base + i, proc, "emulate")
        yield {system: f"http://127.0.0.1:{base + i}" for i, system in enumerate(SYSTEMS, 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def serve_config(
    tmp_path: Path, urls: Mapping[str, str], port: int, **changes: Any
) -> Path:
    """The serve test's configuration (keycom-scoped editor token, SQLite audit), with
    top-level keys replaced or, for mappings, merged one level deep."""
    path = write_config(tmp_path, dict(urls), port)
    config = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            for sub, item in value.items():
                if isinstance(item, dict) and isinstance(config[key].get(sub), dict):
                    config[key][sub].update(item)
                else:
                    config[key][sub] = item
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


def keys(tmp_path: Path) -> tuple[bytes, bytes]:
    """The master and signing keys ``write_config`` put under ``secrets/``."""
    read = (tmp_path / "secrets" / name for name in ("master-key", "signing-key"))
    master, signing = (base64.b64decode(p.read_text().strip()) for p in read)
    return master, signing


def start_serve(
    config: Path, env: Mapping[str, str] | None = None, port: int | None = None
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "service.cli", "serve", "--config", str(config)]
    if port is not None:
        args += ["--port", str(port)]
    return subprocess.Popen(  # noqa: S603 - our own CLI
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"serve exited early: {err.strip().splitlines()[-3:]}")
        if http(port, "GET", "/readyz")[0] == 200:
            return
        time.sleep(0.1)
    raise AssertionError("serve did not become ready")


def http(
    port: int,
    method: str,
    path: str,
    body: object | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any, dict[str, str]]:
    """One request on a new connection: (status, JSON or text body, headers); status 0
    when no answer came (refused, reset)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, _parse(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, _parse(err.read()), dict(err.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None, {}


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample of the gateway's /metrics, or None."""
    status, text, _ = http(port, "GET", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal the process and wait; (exit code, stderr)."""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
