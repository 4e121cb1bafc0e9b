"""SQLite: a batch chained beforehand (``append_if_head``) on a head that has moved since
is refused and writes nothing; on the head it was chained on, it commits (durable or
not). Kept from issue 11's writer-thread work (branch i11-sqlw), whose changes to the
writer's statements were measured and not kept (docs/performance.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from audit import upgrade
from audit.backend import HEAD_SQL
from audit.batch import INSERT_OPEN, UPDATE_HEAD
from audit.store_sqlite import SqliteBackend


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


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
