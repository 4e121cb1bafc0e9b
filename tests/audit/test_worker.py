"""audit.worker: the SQLite store's threads - calls run in order on one thread, results
and errors reach the awaiting task, a call cancelled before it ran is not run, and a
stopped worker runs what was queued, then ends. And the store's one-trip appends, queued
without the write lock, never run inside a transaction of several trips."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from audit import upgrade
from audit.batch import UPDATE_HEAD
from audit.chain import GENESIS
from audit.errors import AuditUnavailable
from audit.store_sqlite import SqliteBackend
from audit.worker import Worker


async def test_calls_run_in_order_on_one_thread_and_answer() -> None:
    worker = Worker("test-worker")
    ran: list[tuple[int, str]] = []

    def call(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        return n * n

    try:
        answers = await asyncio.gather(*(worker.submit(call, n) for n in range(50)))
    finally:
        worker.stop()
    assert answers == [n * n for n in range(50)]
    assert [n for n, _ in ran] == list(range(50))
    assert {name for _, name in ran} == {"test-worker"}
    assert threading.current_thread().name != "test-worker"


async def test_an_error_reaches_the_caller_and_the_thread_goes_on() -> None:
    worker = Worker("test-worker")

    def boom() -> None:
        raise KeyError("x")

    try:
        with pytest.raises(KeyError):
            await worker.submit(boom)
        assert await worker.submit(int, "7") == 7
    finally:
        worker.stop()


async def test_a_call_cancelled_before_it_ran_is_not_run() -> None:
    worker = Worker("test-worker")
    gate, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocking() -> str:
        started.set()
        gate.wait(10)
        ran.append("first")
        return "first"

    try:
        first = worker.submit(blocking)
        second = worker.submit(ran.append, "second")
        await asyncio.to_thread(started.wait, 10)
        second.cancel()  # queued behind the running call
        first.cancel()  # running: it runs to its end, its answer dropped
        gate.set()
        assert await worker.submit(ran.append, "third") is None
    finally:
        worker.stop()
    assert ran == ["first", "third"]
    assert first.cancelled() and second.cancelled()


async def test_stop_runs_what_is_queued_then_refuses() -> None:
    worker = Worker("test-worker")
    gate = threading.Event()
    ran: list[int] = []
    futures = [worker.submit(gate.wait, 10), *(worker.submit(ran.append, n) for n in range(3))]
    gate.set()
    worker.stop()  # waits for the thread: every queued call ran
    assert ran == [0, 1, 2]
    await asyncio.sleep(0)  # the answers arrive through the loop
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError):
        await worker.submit(ran.append, 4)
    worker.stop()  # again: nothing to do


async def test_a_one_trip_append_waits_for_a_transaction_of_several_trips(
    tmp_path: Path,
) -> None:
    """The SQLite store queues a one-trip append without its write lock when the lock is
    free; while a transaction of several trips (``chain_tx``) holds it, the append waits
    for its end instead of running inside it - on a real file."""
    path = tmp_path / "audit.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    backend = await SqliteBackend.connect(path)
    try:
        moved = [(UPDATE_HEAD, [(1, "a" * 64, 0, None)])]
        tx = await backend.chain_tx()
        assert tuple(tx.head[:2]) == (0, GENESIS)
        waiting = asyncio.ensure_future(backend.append_if_head((0, GENESIS), moved, durable=True))
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert not waiting.done()  # not run inside the open transaction
        await tx.rollback()
        # asked for with the lock just released, before the waiting one took it: it
        # still runs after it (chained on the head that one leaves)
        again = [(UPDATE_HEAD, [(2, "b" * 64, 0, None)])]
        behind = asyncio.ensure_future(
            backend.append_if_head((1, "a" * 64), again, durable=False)
        )
        assert await waiting is True  # then run, on its own
        assert await behind is True
        assert await backend.append_if_head((1, "a" * 64), again, durable=True) is False
        assert await backend.fetchall("SELECT seq, hash FROM audit_head") == [(2, "b" * 64)]
    finally:
        await backend.close()
    with pytest.raises(AuditUnavailable):  # closed: an error of the store, in the awaitable
        await backend.append_if_head((2, "b" * 64), again, durable=True)
