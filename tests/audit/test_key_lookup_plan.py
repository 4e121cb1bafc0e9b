"""The keyring's lookup before a batch that makes keys reads indexes, never every key.

Before a batch seals for subjects this process holds no key for, the chain writer sends
one query (``audit/keyring.py``): the live keys of those subjects, and the check that no
key is wrapped by another master key. Under the bench's load on a fresh PostgreSQL store
(issue 11) about half the batches made a key, and this query was most of the chain
writer's server CPU: the check's ``(kek_id < ? OR kek_id > ?) … LIMIT 1`` scanned every
key in the generic plan a prepared statement keeps (statistics or not), and without
statistics - a store younger than its first autovacuum ANALYZE - the subjects' ids were
a filter over every key of the system instead of an index condition. Checked here on a
table of a few thousand keys, the plan the server would run both ways (custom and
generic), with and without statistics.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import asyncpg
import pytest

from audit import upgrade
from audit.batch import Slot
from audit.keyring import _OTHER_KEK_ROW, _lookup
from audit.store_pg import numbered
from tests.audit.conftest import PG_HOST, PG_PORT, _admin_connect

_KEYS = 3000
_SLOTS: list[Slot] = [
    *(("keycom", str(100000 + 7 * i), "") for i in range(12)), ("billbee", "100003", "")
]


def _query() -> tuple[str, list[str]]:
    """The lookup as the keyring sends it (``?`` placeholders)."""
    sql, params = _lookup(_SLOTS)
    return sql + _OTHER_KEK_ROW, [*params, "kek-now", "kek-now"]


def _rows() -> list[tuple[str, str, str, bytes, str, str]]:
    return [
        (str(uuid.uuid4()), ("keycom", "billbee")[i % 2], str(100000 + i), os.urandom(40),
         "kek-now", "2026-11-30T00:00:00Z")
        for i in range(_KEYS)
    ]  # fmt: skip


_INSERT = (
    "INSERT INTO audit_subject_key (key_id, system, customer_id, wrapped, kek_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


@pytest.mark.postgres
@pytest.mark.parametrize("statistics", [False, True], ids=["no statistics", "analyzed"])
@pytest.mark.parametrize("plan", ["force_custom_plan", "force_generic_plan"])
async def test_postgresql_looks_keys_up_by_index(statistics: bool, plan: str) -> None:
    found = await _admin_connect()
    if found is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    admin, user = found
    name = f"audit_test_plan_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await upgrade(f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{name}")
        conn = await asyncpg.connect(f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}")
        try:
            # no autovacuum ANALYZE behind the test's back: "no statistics" stays so
            await conn.execute("ALTER TABLE audit_subject_key SET (autovacuum_enabled = false)")
            await conn.executemany(numbered(_INSERT), _rows())
            if statistics:
                await conn.execute("ANALYZE audit_subject_key")
            sql, params = _query()
            await conn.execute(f"SET plan_cache_mode = {plan}")
            await conn.execute(f"PREPARE lookup AS {numbered(sql)}")
            literals = ", ".join(f"'{p}'" for p in params)  # fixed test values
            lines = [r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE lookup({literals})")]
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    plan_text = "\n".join(lines)
    assert "Seq Scan" not in plan_text, plan_text
    conditions = [line for line in lines if "Index Cond" in line]
    assert any("customer_id" in line for line in conditions), plan_text  # the ids: the index
    assert any("kek_id <" in line for line in conditions), plan_text
    assert any("kek_id >" in line for line in conditions), plan_text


def test_sqlite_looks_keys_up_by_index(tmp_path: Path) -> None:
    import asyncio

    asyncio.run(upgrade(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"))
    con = sqlite3.connect(tmp_path / "audit.db")
    try:
        con.executemany(_INSERT, _rows())
        sql, params = _query()
        plan = [str(row[3]) for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        con.close()
    text = "\n".join(plan)
    assert not any(line.startswith("SCAN audit_subject_key") for line in plan), text
    assert "ix_audit_subject_key_subject (customer_id=?" in text, text
    assert text.count("ix_audit_subject_key_kek") == 2, text
