"""``serve --workers N``: a supervisor and real worker processes on one port.

Each test starts the real CLI (SQLite audit, the emulators in a process of their own)
and looks at the workers from outside: their pids under the supervisor, and which of
them holds each connection (``/proc``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

import pytest

from bench.procs import socket_owners
from service.cli import main as cli_main
from tests.service.chain import read_chain
from tests.service.processes import (
    emulator_process,
    events,
    http,
    keys,
    metric,
    serve_config,
    wait_ready,
)
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import TOKEN

HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Purpose": "customer_service"}


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    with emulator_process("--no-rate-limit") as found:
        yield found


def start(config: Path, workers: int) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", "serve", "--config", str(config),
         "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def wait_workers(supervisor: int, port: int, gone: frozenset[int] = frozenset()) -> set[int]:
    """The supervisor's two workers once both listen on ``port`` (none of ``gone``)."""
    deadline = time.monotonic() + 20
    while True:
        pids = children(supervisor)
        if len(pids) == 2 and not pids & gone and set(sockets(pids, port).values()) == pids:
            return pids
        assert time.monotonic() < deadline, f"workers listening: {sockets(pids, port)}"
        time.sleep(0.05)


def sockets(pids: set[int], port: int, clients: set[int] | None = None) -> dict[int, int]:
    """Which worker holds each socket on ``port``: {client port: pid} for connections
    from ``clients``, or {0: pid} for the listening sockets when ``clients`` is None."""
    inodes = socket_owners(pids)
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) != port or inode not in inodes:
                continue
            client = int(remote.rsplit(":", 1)[1], 16)
            if clients is None and state == "0A":  # LISTEN
                found[len(found)] = inodes[inode]
            elif clients is not None and client in clients:
                found[client] = inodes[inode]
    return found


def serving_two_workers(urls: dict[str, str], tmp_path: Path) -> tuple[int, subprocess.Popen[str]]:
    """A migrated SQLite store and ``serve --workers 2`` starting on a free port."""
    port = free_block()
    config = serve_config(tmp_path, urls, port)
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
    return port, start(config, 2)


def answered_by(pids: set[int], port: int, count: int) -> dict[int, int]:
    """Open ``count`` connections, each answered once (``/readyz``, 200), then closed:
    which of ``pids`` held each (by the client's port)."""
    connections = [HTTPConnection("127.0.0.1", port) for _ in range(count)]
    try:
        for conn in connections:
            conn.request("GET", "/readyz")
            assert conn.getresponse().status == 200
        return sockets(pids, port, {conn.sock.getsockname()[1] for conn in connections})
    finally:
        for conn in connections:
            conn.close()


def test_two_workers_share_the_port_the_metrics_and_one_chain_and_stop_cleanly(
    urls: dict[str, str], tmp_path: Path
) -> None:
    port, proc = serving_two_workers(urls, tmp_path)
    try:
        wait_ready(port, proc)
        pids = wait_workers(proc.pid, port)
        proc.send_signal(signal.SIGHUP)  # every worker reloads
        before = metric(port, "gdpr_gateway_http_requests_total", route="/readyz", status="200")
        held = answered_by(pids, port, 24)
        assert len(held) == 24
        assert set(held.values()) == pids  # both workers took connections and answered

        after = metric(port, "gdpr_gateway_http_requests_total", route="/readyz", status="200")
        assert before is not None and after == before + 24

        customers = [str(100001 + i % 4) for i in range(12)]  # 3 changes to each of 4
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(
                lambda n: http(port, "PATCH", f"/v1/systems/keycom/customers/{customers[n]}",
                               {"note": f"worker test {n}"}, HEADERS),
                range(len(customers)),
            ))  # fmt: skip
        assert [status for status, _, _ in answers] == [200] * len(customers)
        allowed = metric(port, "gdpr_gateway_decisions_total", system="keycom",
                         outcome="allowed", code="none")  # fmt: skip
        assert allowed == len(customers)
        # not in the shared files: the answering worker's own (every worker loads the same)
        assert metric(port, "gdpr_gateway_policy_info", system="keycom") == 1.0
        assert metric(port, "gdpr_gateway_audit_store_up") == 1.0  # the lowest of the live
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    logged = events(err)
    assert proc.returncode == 0, (
        [e for e in logged if e.get("level") != "INFO"],
        [line for line in err.splitlines() if not line.startswith("{")][-30:],
    )
    stopped = [e for e in logged if e["event"] == "worker_stopped"]
    assert sorted(e["pid"] for e in stopped) == sorted(pids)
    assert {e["exit_code"] for e in stopped} == {0}
    assert [e["event"] for e in logged].count("shutdown_complete") == 2
    reloads = [e for e in logged if e.get("trigger") == "signal"]
    assert len(reloads) == 2

    chain = asyncio.run(read_chain(f"sqlite+aiosqlite:///{tmp_path}/audit.db", *keys(tmp_path)))
    assert chain.report.ok
    assert len(chain.intents()) == len(customers) and chain.dangling() == []


def test_a_killed_worker_is_restarted(urls: dict[str, str], tmp_path: Path) -> None:
    port, proc = serving_two_workers(urls, tmp_path)
    try:
        wait_ready(port, proc)
        pids = wait_workers(proc.pid, port)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        now = wait_workers(proc.pid, port, gone=frozenset({victim}))
        assert len(now & pids) == 1
        held = answered_by(now, port, 16)
        assert set(held.values()) == now  # the new worker answers too
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    logged = events(err)
    exited = [e for e in logged if e["event"] == "worker_exited"]
    assert [(e["pid"], e["exit_code"]) for e in exited] == [(victim, -signal.SIGKILL)]
    assert any(e["event"] == "worker_restarting" for e in logged)


def test_workers_that_cannot_start_stop_the_supervisor_with_exit_2(
    urls: dict[str, str], tmp_path: Path
) -> None:
    config = serve_config(tmp_path, urls, free_block())  # no `db upgrade`: no schema
    proc = start(config, 2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "gdpr-gateway db upgrade" in err
    assert any(e["event"] == "supervisor_giving_up" for e in events(err))
