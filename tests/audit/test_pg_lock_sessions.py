"""The shared lock sessions (audit/pg_lock_sessions.py) on the real PostgreSQL: many
customers' locks held at once on a few sessions, their locks and unlocks batched into
one statement, a lock given up leaving nothing held, and a session ended from outside:
its holders' changes refused before their intent, the next lock on a new session. The
unlock is sent, not waited for: held at a gate, the change still answers; the customer's
next change (here or on another replica) waits for it; a failed one leaves nothing held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from audit import AuditLog, AuditUnavailable
from audit.locks import SubjectLocks, lock_key
from audit.pg_lock_sessions import Lease, SharedLocks, _Session
from tests.audit.conftest import (
    advisory_sessions,
    make_intent,
    reset_pg,
    sql,
    until_no_advisory_locks,
)

pytestmark = pytest.mark.postgres

KEYS = tuple(range(4_243_000, 4_243_020))


@pytest.fixture
async def one_session(dsn: str) -> AsyncIterator[SharedLocks]:
    made = SharedLocks(dsn, sessions=1)
    try:
        yield made
    finally:
        await made.close()


async def _holders(dsn: str) -> list[tuple[int, int]]:
    """(session pid, key) of every advisory lock granted in this test's database."""
    rows = await sql(
        dsn,
        "SELECT l.pid, (l.classid::bigint << 32) | l.objid::bigint"
        " FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    return [(int(pid), int(key)) for pid, key in rows]


async def test_many_keys_are_held_at_once_on_the_shared_sessions(dsn: str) -> None:
    shared = SharedLocks(dsn, sessions=2)
    try:
        leases = await asyncio.gather(*(shared.take(key, 5.0) for key in KEYS))
        assert all(isinstance(lease, Lease) for lease in leases)
        held = await _holders(dsn)
        assert sorted(key for _, key in held) == sorted(KEYS)
        assert len({pid for pid, _ in held}) == 2  # two sessions, no connection per key
        assert await shared.take(KEYS[0], 5.0) is None  # held here: the blocking way
        for lease in leases:
            assert lease is not None
            shared.release(lease)
        await shared.settled()
        assert await _holders(dsn) == []
    finally:
        await shared.close()


async def test_locks_and_unlocks_asked_for_together_go_as_one_statement(
    one_session: SharedLocks, dsn: str
) -> None:
    leases = await asyncio.gather(*(one_session.take(key, 5.0) for key in KEYS))
    assert one_session.statements == 1  # twenty locks, one round trip
    assert len(await _holders(dsn)) == len(KEYS)
    # asked for while a statement is in flight: queued, then sent together
    first = asyncio.create_task(one_session.take(KEYS[0] + 100, 5.0))
    while one_session.statements == 1:  # noqa: ASYNC110 - until its statement is on its way
        await asyncio.sleep(0)
    for held in leases:
        assert held is not None
        one_session.release(held)
    lease = await first
    await one_session.settled()
    assert one_session.statements == 3
    assert lease is not None
    assert [key for _, key in await _holders(dsn)] == [lease.key]
    one_session.release(lease)
    await one_session.settled()
    assert await _holders(dsn) == []


async def test_a_lock_given_up_leaves_nothing_held(one_session: SharedLocks, dsn: str) -> None:
    """Cancelled before its statement was sent: not sent; cancelled while in flight (the
    statement is shared, it runs on): released by the session's next statement."""
    before = one_session.take(KEYS[0], 5.0)
    task = asyncio.create_task(before)
    await asyncio.sleep(0)  # the sender is not yet running: nothing sent
    in_flight = asyncio.create_task(one_session.take(KEYS[1], 5.0))
    task.cancel()
    await asyncio.sleep(0)
    while one_session.statements == 0:  # noqa: ASYNC110 - the sender's own progress
        await asyncio.sleep(0)
    in_flight.cancel()
    for cancelled in (task, in_flight):
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    lease = await one_session.take(KEYS[2], 5.0)  # after whatever the session still had
    assert lease is not None
    assert [key for _, key in await _holders(dsn)] == [KEYS[2]]
    one_session.release(lease)
    await one_session.settled()
    assert await _holders(dsn) == []


async def test_a_session_ended_from_outside_refuses_its_holders_and_is_replaced(
    pg_base_url: str | None, dsn: str, keys: dict[str, bytes]
) -> None:
    """pg_terminate_backend on the lock session: the server dropped the customer's lock,
    so the change holding it is refused (AuditUnavailable, nothing written) instead of
    going on unserialised; its release raises nothing; the next lock works."""
    assert pg_base_url is not None
    await reset_pg(pg_base_url)
    log = await AuditLog.open(pg_base_url, **keys)
    other = await AuditLog.open(pg_base_url, **keys)
    try:
        key = lock_key("billbee", "1002")
        async with log.subject_lock("billbee", "1002"):
            await log.begin(make_intent("1002"))  # held: written
            pid = next(pid for pid, held in await _holders(dsn) if held == key)
            await sql(dsn, "SELECT pg_terminate_backend($1)", pid)
            async with asyncio.timeout(10):
                while key in {held for _, held in await _holders(dsn)}:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                # the lock is gone on the server: another replica can have it now
                async with other.subject_lock("billbee", "1002"):
                    pass
                while True:  # until this process hears of the session's end
                    try:
                        SubjectLocks.check("billbee", "1002")
                    except AuditUnavailable:
                        break
                    await asyncio.sleep(0.05)
            with pytest.raises(AuditUnavailable):
                await log.begin(make_intent("1002", request_id="req-2"))
        entries = await sql(dsn, "SELECT count(*) FROM audit_entry")
        assert entries == [(1,)]  # only the intent written while the lock was held
        async with log.subject_lock("billbee", "1002"):  # a new session
            assert lock_key("billbee", "1002") in {key for _, key in await _holders(dsn)}
            await log.begin(make_intent("1002", request_id="req-3"))
        await until_no_advisory_locks(dsn)  # the unlock is sent, not waited for
    finally:
        await log.close()
        await other.close()


async def test_a_lock_granted_as_its_wait_is_cancelled_is_released(
    one_session: SharedLocks, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer (granted) and the caller's cancel in one turn of the loop: the caller
    never holds it, so it is released, not left held on the shared session."""
    session = one_session._sessions[0]
    send = session._send
    waiting: list[asyncio.Task[Lease | None]] = []

    async def send_then_cancel(conn: object, batch: list[Any]) -> None:
        await send(conn, batch)  # the caller's answer is set...
        waiting[0].cancel()  # ... and it is cancelled before it runs again

    monkeypatch.setattr(session, "_send", send_then_cancel)
    waiting.append(asyncio.create_task(one_session.take(KEYS[0], 5.0)))
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    monkeypatch.setattr(session, "_send", send)
    lease = await one_session.take(KEYS[1], 5.0)  # sent after the release
    assert lease is not None
    assert [key for _, key in await _holders(dsn)] == [KEYS[1]]
    one_session.release(lease)
    await one_session.settled()
    assert await _holders(dsn) == []


class _UnlockGate:
    """Holds every lock-session statement that carries an unlock until opened: the
    unlock's round trip made as long as a test needs (the server is the real one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = asyncio.Event()
        self.held = 0  # statements waiting at the gate now
        send = _Session._send

        async def gated(session: _Session, conn: Any, batch: list[Any]) -> None:
            if any(not take for _, take, _, _ in batch):
                self.held += 1
                try:
                    await self.opened.wait()
                finally:
                    self.held -= 1
            await send(session, conn, batch)

        monkeypatch.setattr(_Session, "_send", gated)

    async def reached(self) -> None:
        async with asyncio.timeout(10):
            while not self.held:  # noqa: ASYNC110 - the sender's own progress
                await asyncio.sleep(0)


async def _waiting(dsn: str, key: int) -> bool:
    """Whether some session waits (not granted) for advisory lock ``key``."""
    return await advisory_sessions(dsn, key, granted=False) > 0


@pytest.fixture
async def two_logs(
    pg_base_url: str | None, keys: dict[str, bytes]
) -> AsyncIterator[tuple[AuditLog, AuditLog]]:
    """Two audit logs on one PostgreSQL store: two replicas of the gateway."""
    assert pg_base_url is not None
    await reset_pg(pg_base_url)
    log = await AuditLog.open(pg_base_url, **keys)
    other = await AuditLog.open(pg_base_url, **keys)
    try:
        yield log, other
    finally:
        await log.close()
        await other.close()


async def test_the_answer_does_not_wait_for_the_unlock(
    two_logs: tuple[AuditLog, AuditLog], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change leaves its customer's lock (and answers) while the unlock statement has
    not run: the unlock is sent, not waited for. It runs once it can."""
    log, _ = two_logs
    gate = _UnlockGate(monkeypatch)
    key = lock_key("billbee", "1002")
    async with asyncio.timeout(10):  # waiting for the unlock would never end: fails here
        async with log.subject_lock("billbee", "1002"):
            await log.begin(make_intent("1002"))
    await gate.reached()
    assert key in {held for _, held in await _holders(dsn)}  # the unlock has not run yet
    gate.opened.set()
    async with asyncio.timeout(10):
        while key in {held for _, held in await _holders(dsn)}:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_next_change_of_the_customer_waits_for_the_unlock(
    two_logs: tuple[AuditLog, AuditLog], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a change's unlock has not run, the customer stays serialised: another
    replica's change waits on the server (the blocking way), this process's next one is
    queued behind the unlock on the same session; each gets the lock after it, in turn."""
    log, other = two_logs
    gate = _UnlockGate(monkeypatch)
    key = lock_key("billbee", "1002")
    order: list[str] = []

    async def change(where: AuditLog, name: str) -> None:
        async with where.subject_lock("billbee", "1002"):
            order.append(f"{name} holds")
            holders = [pid for pid, held in await _holders(dsn) if held == key]
            assert len(holders) == 1, holders  # one holder, granted once
            await where.begin(make_intent("1002", request_id=f"req-{name}"))
            order.append(f"{name} leaves")

    async with log.subject_lock("billbee", "1002"):
        await log.begin(make_intent("1002"))
    await gate.reached()
    elsewhere = asyncio.create_task(change(other, "replica"))
    async with asyncio.timeout(10):
        while not await _waiting(dsn, key):  # noqa: ASYNC110 - its lock waits on the server
            await asyncio.sleep(0.01)
    here = asyncio.create_task(change(log, "here"))
    await asyncio.sleep(0.05)  # let both run as far as they can
    assert order == [] and not elsewhere.done() and not here.done()
    gate.opened.set()
    async with asyncio.timeout(10):
        await asyncio.gather(elsewhere, here)
    assert order in (
        ["replica holds", "replica leaves", "here holds", "here leaves"],
        ["here holds", "here leaves", "replica holds", "replica leaves"],
    )
    await log.settle()
    await other.settle()
    assert await sql(dsn, "SELECT count(*) FROM audit_entry") == [(3,)]
    async with asyncio.timeout(10):
        while await _holders(dsn):  # noqa: ASYNC110 - the last unlock, sent after
            await asyncio.sleep(0.01)


async def test_a_failed_unlock_leaves_nothing_held_and_the_session_is_replaced(
    two_logs: tuple[AuditLog, AuditLog], dsn: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The unlock's statement fails (its session ended while it waited): the change has
    answered already, nothing raised; the session is replaced - its lock died with it on
    the server - and the customer's next change gets the lock on a new session."""
    log, _ = two_logs
    gate = _UnlockGate(monkeypatch)
    key = lock_key("billbee", "1002")
    async with log.subject_lock("billbee", "1002"):
        await log.begin(make_intent("1002"))
        pid = next(pid for pid, held in await _holders(dsn) if held == key)
    await gate.reached()
    await sql(dsn, "SELECT pg_terminate_backend($1)", pid)
    gate.opened.set()
    async with asyncio.timeout(10):
        while await _holders(dsn):  # noqa: ASYNC110 - gone with its session
            await asyncio.sleep(0.01)
        async with log.subject_lock("billbee", "1002"):
            holders = await _holders(dsn)
            assert [held for _, held in holders] == [key]
            assert holders[0][0] != pid  # a new session
            await log.begin(make_intent("1002", request_id="req-2"))
    assert "did not hold the lock" not in caplog.text
