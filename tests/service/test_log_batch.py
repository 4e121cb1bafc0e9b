"""Access lines written together (service/log_batch.py): fewer writes, no line lost.

The handler of ``configure_logging`` writes to whatever ``sys.stderr`` is: here a
stream that counts its writes (a real text stream, not a mock), or a real file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import log_batch
from service.cli import main as cli_main
from service.logs import configure_logging, emit, flush, log_event
from tests.service.processes import emulator_process, events, http, serve_config, wait_ready
from tests.service.test_demo_command import free_block
from tests.service.test_logs import alone, configured, lines
from tests.service.test_workers import wait_workers

__all__ = ["configured"]  # a fixture of test_logs, used here

ACCESS = logging.getLogger("gdpr_gateway.access")


class Counted(io.StringIO):
    """A text stream that counts the calls to ``write``."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@contextlib.contextmanager
def batching() -> Iterator[Counted]:
    """The configured handler alone on the root, writing to a counting stream (set in
    the test's body: pytest sets its own handlers and stderr for each phase)."""
    stream, real = Counted(), sys.stderr
    sys.stderr = stream
    try:
        with alone():
            yield stream
            flush()
    finally:
        sys.stderr = real


@pytest.fixture(autouse=True)
def _configured() -> None:
    configure_logging("INFO")


def access(number: int) -> None:
    emit(ACCESS, logging.INFO, "http_request", {"request_id": f"r-{number}"}, batched=True)


def ids(stream: Counted) -> list[str]:
    return [line.get("request_id", line["event"]) for line in lines(stream.getvalue())]


async def test_access_lines_are_written_together_once_due() -> None:
    with batching() as stderr:
        for number in range(5):
            access(number)
        assert stderr.writes == 0  # waiting
        await asyncio.sleep(log_batch.BATCH_SECONDS * 3)
        assert ids(stderr) == [f"r-{n}" for n in range(5)]
        assert stderr.writes == 1


async def test_another_line_writes_the_waiting_ones_first_in_one_write() -> None:
    with batching() as stderr:
        access(1)
        access(2)
        log_event(logging.getLogger("gdpr_gateway.test"), "not_batched", request_id="r-3")
        assert ids(stderr) == ["r-1", "r-2", "r-3"]
        assert stderr.writes == 1
        logging.getLogger("gdpr_gateway.test").warning("through logging's own way")
        access(4)
        await asyncio.sleep(log_batch.BATCH_SECONDS * 3)
        assert ids(stderr) == ["r-1", "r-2", "r-3", "through logging's own way", "r-4"]
        assert stderr.writes == 3


async def test_a_full_batch_is_written_at_once() -> None:
    with batching() as stderr:
        for number in range(log_batch.BATCH_LINES):
            access(number)
        assert ids(stderr) == [f"r-{n}" for n in range(log_batch.BATCH_LINES)]
        assert stderr.writes == 1


async def test_flush_writes_what_waits() -> None:
    with batching() as stderr:
        access(1)
        assert stderr.writes == 0
        flush()  # the end of run_server
        assert ids(stderr) == ["r-1"]
        await asyncio.sleep(log_batch.BATCH_SECONDS * 3)  # the timer then finds nothing
        assert stderr.writes == 1


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    with batching() as stderr:
        access(1)
        assert ids(stderr) == ["r-1"]


def test_lines_kept_on_a_loop_that_ended_are_written_by_the_next_line() -> None:
    with batching() as stderr:
        async def one(number: int) -> None:
            access(number)

        asyncio.run(one(1))  # the loop closes before the batch is due
        assert stderr.writes == 0
        asyncio.run(one(2))  # another loop: what waits is written first
        assert ids(stderr) == ["r-1", "r-2"]


async def test_a_forked_child_does_not_write_its_parents_waiting_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "stderr.log"
    with out.open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        with alone():
            access(1)
            pid = os.fork()
            if pid == 0:  # the child: flushes what it has, as at the end of serving
                try:
                    flush()
                    stream.flush()
                finally:
                    os._exit(0)
            _, status = os.waitpid(pid, 0)  # noqa: ASYNC222 - the child exits at once
            assert os.waitstatus_to_exitcode(status) == 0
            flush()
    assert [line["request_id"] for line in lines(out.read_text())] == ["r-1"]


def test_a_graceful_stop_of_two_workers_loses_no_access_line(tmp_path: Path) -> None:
    """Workers end with ``os._exit`` (no ``atexit``): what waits is written when serving
    ends. Every answered request has its access line, once."""
    with emulator_process("--no-rate-limit") as urls:
        port = free_block()
        config = serve_config(tmp_path, urls, port)
        assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "service.cli", "serve", "--config", str(config),
             "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_ready(port, proc)
            wait_workers(proc.pid, port)  # both (SIGTERM before its start kills one)
            sent = [f"batch-{n}" for n in range(20)]
            for request_id in sent:
                status, _, _ = http(port, "GET", "/readyz", headers={"X-Request-Id": request_id})
                assert status == 200
        finally:
            proc.send_signal(signal.SIGTERM)  # at once: the last lines still wait
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    logged = [e.get("request_id") for e in events(err) if e["event"] == "http_request"]
    assert sorted(r for r in logged if r in sent) == sorted(sent)
