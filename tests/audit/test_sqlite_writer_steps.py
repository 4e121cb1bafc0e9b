"""SQLite: the statements of the writer thread's transactions (issue 11), on real files.

A batch chained beforehand checks the head in the head's own update (no ``SELECT`` of
the head), and is still refused, writing nothing, when the head moved; ``synchronous``
is set only when a transaction's durability differs from the one before it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from audit import AuditLog, Outcome, upgrade
from audit.backend import HEAD_SQL
from audit.batch import INSERT_OPEN, UPDATE_HEAD
from audit.store_sqlite import SqliteBackend
from tests.audit.conftest import make_intent


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _traced(log: AuditLog) -> list[str]:
    """The statements the writer connection runs from now on."""
    backend = log._backend
    assert isinstance(backend, SqliteBackend) and backend._w is not None
    seen: list[str] = []
    backend._w.set_trace_callback(seen.append)
    return seen


async def test_a_sent_batch_checks_the_head_in_its_update(
    db: Path, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(f"sqlite+aiosqlite:///{db}", **keys)
    try:
        await log.record(make_intent("1001"), Outcome("applied"))  # the subject's key made
        seen = _traced(log)
        await log.record(make_intent("1001"), Outcome("applied"))  # sent: key cached
        assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
        assert not [s for s in seen if s.startswith("SELECT")]  # the head not read
        heads = [s for s in seen if s.startswith("UPDATE audit_head")]
        assert len(heads) == 1 and " WHERE id = 1 AND seq = " in heads[0]
        assert seen.index(heads[0]) == 1  # the transaction's first write
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_synchronous_is_set_only_when_the_durability_changes(
    db: Path, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(f"sqlite+aiosqlite:///{db}", **keys)
    try:
        first = await log.begin(make_intent("1001"))
        second = await log.begin(make_intent("1002"))
        seen = _traced(log)
        lazy = await log.finish(first, Outcome("applied"), durable=False)
        await log.get(lazy)  # committed
        lazy = await log.finish(second, Outcome("applied"), durable=False)
        await log.get(lazy)
        await log.record(make_intent("1003"), Outcome("applied"))  # durable
        pragmas = [s for s in seen if s.startswith("PRAGMA synchronous")]
        assert pragmas == ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"]
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_a_batch_chained_on_a_moved_head_writes_nothing(db: Path) -> None:
    backend = await SqliteBackend.connect(db)
    try:
        (head,) = await backend.fetchall(HEAD_SQL)
        seq, head_hash = int(head[0]), str(head[1])
        statements = [
            (INSERT_OPEN, [("intent-x", seq + 1, "2026-01-01T00:00:00Z")]),
            (UPDATE_HEAD, [(seq + 1, "f" * 64, head[2], head[3])]),
        ]
        assert await backend.append_if_head((seq, "e" * 64), statements, durable=True) is False
        assert await backend.fetchall("SELECT count(*) FROM audit_open_intent") == [(0,)]
        assert await backend.fetchall(HEAD_SQL) == [head]
        assert await backend.append_if_head((seq, head_hash), statements, durable=False) is True
        assert await backend.fetchall("SELECT count(*) FROM audit_open_intent") == [(1,)]
        assert (await backend.fetchall(HEAD_SQL))[0][:2] == (seq + 1, "f" * 64)
    finally:
        await backend.close()
    con = sqlite3.connect(db)  # committed: seen by another connection
    try:
        assert con.execute("SELECT seq FROM audit_head").fetchone() == (seq + 1,)
    finally:
        con.close()
