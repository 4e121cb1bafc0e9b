"""The customer and job locks of the PostgreSQL store, on the real server: across backends
(as replicas), and the dedicated lock connections (audit/pg_locks.py) - a free-list
instead of an asyncpg pool, with the pool's rules: bounded waits, a connection whose lock
state is not known terminated, never reused, and an idle one closed after a while. The
shared lock sessions themselves: tests/audit/test_pg_lock_sessions.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from audit import pg_locks
from audit.errors import LockTimeout, LockWait
from audit.store_pg import PgBackend
from tests.audit.conftest import advisory_sessions, sql, until_no_advisory_locks

pytestmark = pytest.mark.postgres

KEY, OTHER = 4_242_001, 4_242_002


@pytest.fixture
async def backends(dsn: str) -> AsyncIterator[list[PgBackend]]:
    made: list[PgBackend] = []
    try:
        made += [await PgBackend.connect(dsn, max_locks=2) for _ in range(3)]
        yield made
    finally:
        for backend in made:
            await backend.close()


@pytest.fixture
async def connections(dsn: str) -> AsyncIterator[pg_locks.LockConnections]:
    """Two dedicated lock connections (what a contended customer lock waits on)."""
    made = pg_locks.LockConnections(dsn, 2)
    try:
        yield made
    finally:
        await made.close()


Locker = Callable[[int, float], AbstractAsyncContextManager[Any]]


async def _granted(dsn: str, key: int) -> int:
    """Sessions of this test's database holding the advisory lock ``key``."""
    return await advisory_sessions(dsn, key, granted=True)


async def test_one_holder_at_a_time_across_backends(backends: list[PgBackend], dsn: str) -> None:
    holder, waiter, _ = backends
    order: list[str] = []

    async def wait_then_hold() -> None:
        async with waiter.subject_lock(KEY, 10.0):
            order.append("waiter")

    async with holder.subject_lock(KEY, 1.0):
        queued = asyncio.create_task(wait_then_hold())
        await asyncio.sleep(0.3)
        assert order == []  # queued on the server behind the holder
        async with waiter.subject_lock(OTHER, 1.0):  # another key: not held up
            order.append("other key")
        order.append("holder done")
    await queued
    assert order == ["other key", "holder done", "waiter"]
    await until_no_advisory_locks(dsn)  # each connection went back holding nothing
    assert holder.lock_use() == waiter.lock_use() == (0, 2)


async def test_a_cancelled_lock_wait_is_never_reused(backends: list[PgBackend], dsn: str) -> None:
    """The server may grant the lock to a session whose wait was cancelled: that session
    is terminated, so the lock dies with it instead of staying held on a free connection."""
    holder, waiter, third = backends
    async with holder.subject_lock(KEY, 1.0):
        task = asyncio.create_task(_hold(waiter.subject_lock, KEY, 30.0))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiter.lock_use() == (0, 2)
    # were the cancelled session pooled, it could hold KEY now, and nobody would release it
    async with asyncio.timeout(10), third.subject_lock(KEY, 5.0):
        assert await _granted(dsn, KEY) == 1
    async with waiter.subject_lock(KEY, 5.0):
        pass
    await until_no_advisory_locks(dsn)  # the unlock is sent, not waited for


async def test_a_timed_out_lock_wait_is_lock_timeout_and_leaves_nothing(
    backends: list[PgBackend], dsn: str
) -> None:
    holder, waiter, _ = backends
    async with holder.subject_lock(KEY, 1.0):
        with pytest.raises(LockTimeout) as caught:
            await _hold(waiter.subject_lock, KEY, 0.3)
        assert caught.value.wait is LockWait.SUBJECT
    await until_no_advisory_locks(dsn)  # the unlock is sent, not waited for
    async with waiter.subject_lock(KEY, 5.0):
        assert await _granted(dsn, KEY) == 1


async def test_a_waiter_for_a_connection_gets_the_one_given_back(
    connections: pg_locks.LockConnections,
) -> None:
    """Both lock connections held: a third write waits (bounded) and gets the first one
    given back; with none given back in time it is LockTimeout(CONNECTION)."""
    lock = connections.subject
    release = asyncio.Event()
    hung = await _holders(lock, (KEY, KEY + 1), (release, release))
    assert connections.held == 2
    with pytest.raises(LockTimeout) as caught:
        await _hold(lock, OTHER + 10, 0.2)
    assert caught.value.wait is LockWait.CONNECTION
    third = asyncio.create_task(_hold(lock, OTHER + 10, 10.0))
    await asyncio.sleep(0.1)
    assert not third.done()
    release.set()
    await asyncio.gather(*hung, third)
    assert connections.held == 0


async def test_a_free_connection_the_server_closed_is_replaced(
    backends: list[PgBackend], dsn: str
) -> None:
    backend = backends[0]
    async with backend.subject_lock(KEY, 1.0):
        pids = await sql(
            dsn,
            "SELECT pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
        )
    assert len(pids) == 1
    await sql(dsn, "SELECT pg_terminate_backend($1)", pids[0][0])
    await asyncio.sleep(0.3)  # the connection sees its socket closed
    async with backend.subject_lock(KEY, 5.0):
        assert await _granted(dsn, KEY) == 1
    assert backend.lock_use() == (0, 2)


async def test_the_job_lock_is_held_by_one_session(backends: list[PgBackend]) -> None:
    first, second, _ = backends
    async with first.job_lock(KEY) as held:
        assert held
        async with second.job_lock(KEY) as other:
            assert not other
    async with second.job_lock(KEY) as held:
        assert held


async def _hold(lock: Locker, key: int, seconds: float) -> None:
    async with lock(key, seconds):
        pass


async def _holders(
    lock: Locker,
    keys: tuple[int, ...],
    releases: Sequence[asyncio.Event],
    *,
    seconds: float = 1.0,
) -> list[asyncio.Task[None]]:
    """One task per key, holding its lock until its release event is set; returns once
    every one holds its lock."""
    held = [asyncio.Event() for _ in keys]

    async def hold(key: int, holds: asyncio.Event, release: asyncio.Event) -> None:
        async with lock(key, seconds):
            holds.set()
            await release.wait()

    tasks = [
        asyncio.create_task(hold(key, holds, release))
        for key, holds, release in zip(keys, held, releases, strict=True)
    ]
    await asyncio.gather(*(holds.wait() for holds in held))
    return tasks


async def test_a_lock_connection_idle_for_long_is_closed(
    connections: pg_locks.LockConnections, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As asyncpg's pool did: connections opened for a burst do not stay open for ever."""
    monkeypatch.setattr(pg_locks, "IDLE_SECONDS", 0.2)
    lock = connections.subject
    release = asyncio.Event()
    burst = await _holders(lock, (KEY, OTHER), (release, release), seconds=5.0)
    release.set()
    await asyncio.gather(*burst)
    assert await _lock_sessions(dsn) == 2
    await asyncio.sleep(0.3)
    await _hold(lock, KEY, 5.0)  # one in use again; the other, idle for long, closed
    async with asyncio.timeout(5):
        while await _lock_sessions(dsn) != 1:  # noqa: ASYNC110 - the server's state, polled
            await asyncio.sleep(0.05)


async def _lock_sessions(dsn: str) -> int:
    """Sessions of this test's database whose last query was an advisory unlock."""
    rows = await sql(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'SELECT pg_advisory_unlock(%'",
    )
    return int(rows[0][0])


async def test_a_wake_that_meets_a_cancelled_wait_goes_to_the_next_waiter(
    connections: pg_locks.LockConnections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter woken for a connection given back, but cancelled before it could take it
    (the wake and the cancel in one turn of the loop), passes the wake on: the next
    waiter gets the free connection instead of waiting out its bound beside it."""
    lock = connections.subject
    release = [asyncio.Event(), asyncio.Event()]
    hung = await _holders(lock, (KEY, KEY + 1), release)
    first = asyncio.create_task(_hold(lock, OTHER + 20, 30.0))
    second = asyncio.create_task(_hold(lock, OTHER + 21, 2.0))
    await asyncio.sleep(0.1)  # both queued for a connection, first ahead
    assert not first.done() and not second.done()
    wake = connections._wake

    def wake_then_cancel_first() -> None:
        wake()  # first's wait gets the connection given back...
        first.cancel()  # ... and is cancelled before it runs again

    monkeypatch.setattr(connections, "_wake", wake_then_cancel_first)
    release[0].set()  # one connection given back; the other stays held
    await hung[0]
    monkeypatch.setattr(connections, "_wake", wake)
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # LockTimeout(CONNECTION) if the wake died with first
    release[1].set()
    await hung[1]
    assert connections.held == 0
