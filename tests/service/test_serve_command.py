"""The production path: ``db upgrade --config`` then ``serve --config``, as an operator runs it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import main as cli_main
from service.registry import SYSTEMS
from tests.service.test_demo_command import free_block, request

TOKEN = "ops-test-token-1234567890"


def wait_port(port: int, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            _, err = proc.communicate()
            last = err.strip().splitlines()[-3:] if err else []
            raise AssertionError(f"{what} exited early: {last}")
        assert time.monotonic() < deadline, f"{what} did not start"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)


@pytest.fixture
def upstream_urls() -> Iterator[dict[str, str]]:
    """The four emulators in a process of their own, as real upstreams would be."""
    base = free_block()
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", "emulate", "--base-port", str(base),
         "--no-rate-limit"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        for i in range(1, 5):
            wait_port(base + i, proc, "emulate")
        yield {system: f"http://127.0.0.1:{base + i}" for i, system in enumerate(SYSTEMS, 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def write_config(tmp_path: Path, urls: dict[str, str], port: int) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("master-key", "signing-key", "pseudonym-key"):
        (secrets / name).write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    (secrets / "hash-salt").write_text(base64.b64encode(os.urandom(16)).decode())
    config = {
        "host": "127.0.0.1",
        "port": port,
        "shutdown": {"drain_seconds": 0},  # nothing routes to it: stop at once on SIGTERM
        "audit": {
            "url": f"sqlite+aiosqlite:///{tmp_path}/audit.db",
            "master_key_file": "secrets/master-key",
            "signing_key_file": "secrets/signing-key",
        },
        "masking": {
            "pseudonym_key_file": "secrets/pseudonym-key",
            "hash_salt_file": "secrets/hash-salt",
        },
        "auth": {
            "tokens": [
                {
                    "name": "crm-backend",
                    "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                    "roles": ["editor"],
                    "systems": ["keycom"],
                }
            ]
        },
        "upstreams": {system: upstream_config(system, urls[system]) for system in SYSTEMS},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def upstream_config(system: str, url: str) -> dict[str, Any]:
    """One ``upstreams.<system>`` section: the emulator's published credentials."""
    emulator = SYSTEMS[system].emulator
    section: dict[str, Any] = {"base_url": url, "credentials": dict(emulator.credentials)}
    if emulator.options:
        section["options"] = {"account": emulator.options["account"]}
    return section


def unreadable_request(port: int) -> bytes:
    """200 headers, over the limit: refused by the HTTP parser before the app sees it."""
    raw = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n" + b"".join(
        b"X-%d: ECHO\r\n" % i for i in range(200)
    ) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def patch(port: int, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    return request(port, "PATCH", path, body, TOKEN)


def test_db_upgrade_then_serve_with_a_config_file(
    upstream_urls: dict[str, str], tmp_path: Path
) -> None:
    port = free_block()
    config = write_config(tmp_path, upstream_urls, port)
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0

    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_port(port, proc, "serve")
        status, body = patch(port, "/v1/systems/keycom/customers/4001", {"note": "via serve"})
        assert status == 200 and body["applied"] is True
        # the token's scope is keycom only
        status, body = patch(port, "/v1/systems/billbee/customers/1002", {"Tel1": "+49 30 1"})
        assert status == 403 and body["code"] == "forbidden"
        # serve runs the shared server (service/server.py): aiohttp's parser errors are
        # problem+json without echo, and no versions are named
        answer = unreadable_request(port)
        assert answer.startswith(b"HTTP/1.0 400"), answer[:40]
        assert b"application/problem+json" in answer and b'"bad_request"' in answer
        assert b"Server: gdpr-gateway\r\n" in answer and b"aiohttp" not in answer
        assert b"ECHO" not in answer
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    # the logs are JSON lines and carry neither the token nor the value written
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(json.loads(ln) for ln in lines)
    assert TOKEN not in err and "via serve" not in err
    assert cli_main(["audit", "verify", "--config", str(config)]) == 0


def test_serve_with_a_bad_config_lists_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("port: eighty\naudit: {}\n")
    assert cli_main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "port" in err and "audit.url" in err
