"""``bench/bare_proxy.py --processes N``: the reference proxy as N processes on one port,
as ``serve --workers N`` runs the gateway (docs/performance.md, "The gateway end to
end"). Real processes on loopback; the emulators in a process of their own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.procs import cpu_by_process, free_port, http_json, server
from tests.service.processes import emulator_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    with emulator_process("--no-rate-limit") as found:
        yield found


def patch(port: int, customer: int, phone: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/systems/keycom/customers/{customer}",
        data=json.dumps({"phone": phone}).encode(), method="PATCH",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert answer.status == 200
        return dict(json.loads(answer.read()))


def test_n_processes_share_the_port_answer_and_stop_on_sigterm(
    urls: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare_proxy", "--port", str(port),
            "--billbee", urls["billbee"], "--keycom", urls["keycom"],
            "--uvloop", "--processes", "2"]  # fmt: skip
    http_json("POST", f"{urls['keycom']}/_emulator/reset")
    # server() returns once both processes listen (bench.procs.listening)
    with server(argv, port, "reference", tmp_path / "proxy.log", listeners=2) as proc:
        serving = [pid for pid in cpu_by_process(proc.pid) if pid != proc.pid]
        assert len(serving) == 2  # the parent and its two processes
        answers = [patch(port, 100001 + n, f"+358 40 {n:07d}") for n in range(6)]
        assert all(a["applied"] is True for a in answers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # each of the two exited 0
    assert http_json("GET", f"{urls['keycom']}/_emulator/stats")["requests"] == {
        "GET": 6, "PUT": 0, "PATCH": 6, "POST": 0, "DELETE": 0
    }
    assert not [pid for pid in serving if Path(f"/proc/{pid}").exists()]  # reaped


def test_processes_below_one_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bare_proxy", "--port", "1", "--billbee", "x",
         "--keycom", "y", "--processes", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--processes must be at least 1" in done.stderr
