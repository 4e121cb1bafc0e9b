"""SIGTERM to a real ``gdpr-gateway serve`` while changes are in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.cli import main as cli_main
from tests.service.chain import read_chain
from tests.service.processes import (
    emulator_process,
    events,
    http,
    keys,
    serve_config,
    start_serve,
    wait_ready,
)
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import TOKEN

HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Purpose": "customer_service"}
LATENCY_MS = 1000


@pytest.fixture
def urls() -> Iterator[dict[str, str]]:
    with emulator_process("--no-rate-limit") as found:
        yield found


def emulator(urls: dict[str, str], method: str, path: str, body: object = None) -> object:
    port = int(urls["keycom"].rsplit(":", 1)[1])
    status, answer, _ = http(port, method, path, body)
    assert status == 200, (path, answer)
    return answer


def patches_arrived(urls: dict[str, str]) -> int:
    stats = emulator(urls, "GET", "/_emulator/stats")
    assert isinstance(stats, dict)
    return int(stats["requests"].get("PATCH", 0))


def test_sigterm_drains_finishes_every_change_and_signs_the_chain(
    urls: dict[str, str], tmp_path: Path
) -> None:
    port = free_block()
    config = serve_config(tmp_path, urls, port)
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
    proc = start_serve(config, env={
        "GDPR_GATEWAY_SHUTDOWN_DRAIN_SECONDS": "1.5",
        "GDPR_GATEWAY_SHUTDOWN_GRACE_SECONDS": "20",
    })
    customers = [str(100001 + i) for i in range(6)]
    signalled = False
    with ThreadPoolExecutor(max_workers=8) as pool:
        try:
            wait_ready(port, proc)
            emulator(urls, "POST", "/_emulator/faults",
                     {"latency_ms": LATENCY_MS, "methods": ["PATCH"]})
            in_flight = [
                pool.submit(http, port, "PATCH", f"/v1/systems/keycom/customers/{c}",
                            {"note": f"in flight {c}"}, HEADERS)
                for c in customers
            ]
            deadline = time.monotonic() + 10
            while patches_arrived(urls) < len(customers):  # all forwarded, none answered
                assert time.monotonic() < deadline, "the changes did not reach keycom"
                time.sleep(0.02)

            proc.send_signal(signal.SIGTERM)
            signalled = True
            deadline = time.monotonic() + 1.0
            while (ready := http(port, "GET", "/readyz"))[0] == 200:
                assert time.monotonic() < deadline, "/readyz stayed 200 after SIGTERM"
                time.sleep(0.01)
            assert ready[0] == 503 and ready[1]["checks"]["accepting"] is False
            # the drain: new connections are still served, the probe of life still passes
            assert http(port, "GET", "/healthz")[0] == 200
            status, during, headers = http(
                port, "PATCH", "/v1/systems/keycom/customers/100099",
                {"note": "sent during the drain"}, HEADERS,
            )
            assert status == 200 and during["applied"] is True
            assert headers.get("Connection", "").lower() == "close"
            answers = [f.result(timeout=30) for f in in_flight]
        finally:
            if not signalled:
                proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert all(status == 200 and body["applied"] is True for status, body, _ in answers)
    logged = [e["event"] for e in events(err) if e["event"].startswith("shutdown_")]
    assert logged[0] == "shutdown_signal" and logged.count("shutdown_signal") == 1
    assert {"shutdown_draining", "shutdown_stopped_accepting", "shutdown_complete"} <= set(logged)
    assert "shutdown_grace_expired" not in logged

    assert cli_main(["audit", "verify", "--config", str(config)]) == 0
    chain = asyncio.run(read_chain(f"sqlite+aiosqlite:///{tmp_path}/audit.db", *keys(tmp_path)))
    assert chain.report.ok
    assert len(chain.intents()) == len(customers) + 1 and chain.dangling() == []
    assert {o[0]["outcome"] for o in chain.outcomes().values()} == {"applied"}
    assert chain.checkpoint_seq == chain.head_seq  # signed at the very end
