"""A chain transaction's writes as one PostgreSQL statement (audit/pg_write.py), on the
real server: a batch chained on a head that moved writes nothing, the rows and the chain
are the ones the statements one by one would write, a lazy commit's setting does not
outlive its transaction, and what one statement cannot write right goes one by one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from audit import AuditLog, AuditUnavailable, Outcome
from audit.backend import INSERT_ENTRY, Statement
from audit.batch import DELETE_OPEN, DESTROY_KEYS, INSERT_OPEN, UPDATE_HEAD
from audit.chain import GENESIS, ChainState, canonical, check_rows, entry_hash
from audit.ids import uuid7
from audit.pg_write import one_statement
from audit.store_pg import PgBackend
from tests.audit.conftest import make_intent, reset_pg, sql

NOW = "2026-11-30T04:00:00.000000Z"


@pytest.fixture
async def backend(pg_base_url: str | None) -> AsyncIterator[PgBackend]:
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    # one connection: a setting left behind by one append would be seen by the next
    made = await PgBackend.connect(pg_base_url.replace("postgresql+asyncpg", "postgresql"),
                                   max_size=1)  # fmt: skip
    try:
        yield made
    finally:
        await made.close()


def _append(seq: int, prev: str, *, opens: bool = False, closes: list[str] = ()) -> tuple[
    list[Statement], str, str
]:
    """The statements appending one entry after (seq - 1, prev): (them, its id, its hash)."""
    audit_id = uuid7()
    body = canonical({"audit_id": audit_id, "time": NOW, "system": "billbee",
                      "customer_id": "1002", "action": "update", "phase": "intent"})  # fmt: skip
    digest = entry_hash(seq, prev, body)
    return [
        (INSERT_ENTRY, [(seq, body, prev, digest)]),
        (INSERT_OPEN, [(audit_id, seq, NOW)] if opens else []),
        (DELETE_OPEN, [(c,) for c in closes]),
        (DESTROY_KEYS, []),
        (UPDATE_HEAD, [(seq, digest, 0, None)]),
    ], audit_id, digest


async def _chain_ok(backend: PgBackend) -> tuple[bool, int]:
    rows = await backend.fetchall("SELECT seq, body, prev_hash, hash FROM audit_entry ORDER BY seq")
    state = ChainState()
    check_rows(state, rows)
    head = (await backend.fetchall("SELECT seq, hash FROM audit_head WHERE id = 1"))[0]
    return state.ok and tuple(head) == (state.seq, state.head), state.entries


@pytest.mark.postgres
async def test_a_batch_chained_on_a_head_that_moved_writes_nothing(backend: PgBackend) -> None:
    first, intent_id, digest = _append(1, GENESIS, opens=True)
    assert one_statement(first, expected=(0, GENESIS)) is not None  # the one-statement path
    assert await backend.append_if_head((0, GENESIS), first, durable=True)
    rival, _, _ = _append(1, GENESIS, opens=True)  # another replica's, on the same head
    assert not await backend.append_if_head((0, GENESIS), rival, durable=True)
    assert await backend.fetchall("SELECT audit_id FROM audit_open_intent") == [(intent_id,)]
    second, _, _ = _append(2, digest, closes=[intent_id])
    assert await backend.append_if_head((1, digest), second, durable=False)
    assert await backend.fetchall("SELECT audit_id FROM audit_open_intent") == []
    assert await _chain_ok(backend) == (True, 2)
    # the lazy commit's synchronous_commit was its transaction's only
    assert await backend.fetchall("SHOW synchronous_commit") == [("on",)]


@pytest.mark.postgres
async def test_the_full_way_writes_in_one_statement_and_commits(backend: PgBackend) -> None:
    tx = await backend.chain_tx(durable=False)
    assert tuple(tx.head[:2]) == (0, GENESIS)
    statements, intent_id, _ = _append(1, GENESIS, opens=True)
    await tx.commit(statements)
    assert await backend.fetchall("SELECT audit_id FROM audit_open_intent") == [(intent_id,)]
    assert await _chain_ok(backend) == (True, 1)
    assert await backend.fetchall("SHOW synchronous_commit") == [("on",)]


@pytest.mark.postgres
async def test_an_intent_opened_and_closed_in_one_batch_goes_one_by_one(
    backend: PgBackend,
) -> None:
    """One statement's parts cannot see each other's rows: its close would miss the
    intent it opens. Such a batch is written statement by statement."""
    opening, intent_id, digest = _append(1, GENESIS, opens=True)
    closing, _, _ = _append(2, digest, closes=[intent_id])
    batch = [(INSERT_ENTRY, opening[0][1] + closing[0][1]), opening[1], closing[2], closing[4]]
    assert one_statement(batch, expected=(0, GENESIS)) is None
    assert await backend.append_if_head((0, GENESIS), batch, durable=True)
    assert await backend.fetchall("SELECT count(*) FROM audit_open_intent") == [(0,)]
    assert await _chain_ok(backend) == (True, 2)


def _rows(n: int) -> list[tuple[Any, ...]]:
    return [(i,) for i in range(n)]


@pytest.mark.parametrize(
    "statements",
    [
        [(DESTROY_KEYS, [(NOW, "billbee", "1")]), (UPDATE_HEAD, _rows(1))],  # an erasure
        [("DELETE FROM audit_subject_key WHERE key_id = ?", _rows(1)), (UPDATE_HEAD, _rows(1))],
        [(INSERT_ENTRY, _rows(1))],  # no head
        [(INSERT_ENTRY, _rows(1)), (UPDATE_HEAD, _rows(2))],
        [(UPDATE_HEAD, _rows(1)), (UPDATE_HEAD, _rows(1))],
    ],
)
def test_what_one_statement_cannot_write_right_is_not_made_one(
    statements: list[Statement],
) -> None:
    assert one_statement(statements) is None


@pytest.mark.postgres
async def test_a_rotation_committed_while_a_new_key_waits_is_seen(
    pg_base_url: str | None, keys: dict[str, bytes]
) -> None:
    """A batch that makes a key checks the master key under the append lock: a rotation
    (which re-wraps keys under that lock without moving the head) committed while the
    batch waited for the lock is seen, and the new key is not written under the old
    master key. (A batch tried on the expected head outside the lock, 3259d44, wrote it.)"""
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    log = await AuditLog.open(pg_base_url, **keys)
    rotation = await PgBackend.connect(pg_base_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await log.record(make_intent("1"), Outcome("applied"))  # a key, this master key's
        tx = await rotation.chain_tx()  # a rotation's transaction: the head row is held
        waiting = asyncio.create_task(log.record(make_intent("2"), Outcome("applied")))
        await asyncio.sleep(0.5)  # its batch is at the head row now
        assert not waiting.done()
        await tx.commit([("UPDATE audit_subject_key SET kek_id = ?", [("another-master-key",)])])
        with pytest.raises(AuditUnavailable):
            await waiting
        assert await sql(pg_base_url, "SELECT customer_id FROM audit_subject_key") == [("1",)]
    finally:
        await rotation.close()
        await log.close()
