"""The shipped migrations create exactly the tables the SQLModel models describe."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import audit.models  # noqa: F401 - registers the tables
from audit import AuditLog, StoreNotInitialised, upgrade


async def test_migrations_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await upgrade(url)
    await upgrade(url)  # idempotent
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "audit_alembic_version"}
            )
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []
    assert {"audit_entry", "audit_head", "audit_checkpoint", "audit_subject_key",
            "audit_open_intent"} <= set(SQLModel.metadata.tables)  # fmt: skip


async def test_open_without_schema_says_what_to_do(tmp_path: Path) -> None:
    keys = {"master_key": b"m" * 32, "signing_key": b"s" * 32}
    with pytest.raises(StoreNotInitialised, match="db upgrade"):
        await AuditLog.open(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", **keys)
    log = await AuditLog.open(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", create=True, **keys)
    try:
        assert (await log.verify()).ok
    finally:
        await log.close()


async def _to_revision(url: str, revision: str, *, down: bool = False) -> None:
    """Run the shipped migrations up (or down) to ``revision``."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from audit.migrate import _SCRIPTS

    def run(connection: object) -> None:
        config = Config()
        config.set_main_option("script_location", str(_SCRIPTS))
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_0002_keeps_every_query_column_and_fills_new_rows(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0001 wrote generated columns; 0002 fills them by a trigger: the values of rows
    written before stay, rows written after get theirs, queries find both; and back."""
    from audit.store_pg import PgBackend
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    import asyncpg

    from audit import Outcome
    from tests.audit.conftest import make_intent

    admin_url = pg_base_url.replace("postgresql+asyncpg", "postgresql")
    name = f"audit_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_base_url.rsplit("/", 1)[0] + f"/{name}"
    keys = {"master_key": os.urandom(32), "signing_key": os.urandom(32)}
    columns = (
        "SELECT seq, audit_id, customer_id, actor, phase, outcome FROM audit_entry ORDER BY seq"
    )
    try:
        await _to_revision(url, "0001")
        # entries without sealed values: today's key table (0003) is not there yet at 0001
        plain = [dataclasses.replace(make_intent(str(n)), before={}, after={}, protected={})
                 for n in range(3)]  # fmt: skip
        # a writer of that time: it does not send the query columns (0006), which 0001
        # generates and 0001 lacks two of
        monkeypatch.setattr(PgBackend, "sends_query_columns", False)
        async with await AuditLog.open(url, **keys) as log:
            old = [await log.record(intent, Outcome("applied")) for intent in plain]
        monkeypatch.undo()
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            before = [tuple(r) for r in await conn.fetch(columns)]
            await upgrade(url)  # 0002 and on
            assert [tuple(r) for r in await conn.fetch(columns)] == before
            async with await AuditLog.open(url, **keys) as log:
                new = await log.begin(make_intent("1"))
                page = await log.query(customer_id="1")
                assert [e["audit_id"] for e in page.entries] == [new, old[1]]
                assert (await log.get(new))["phase"] == "intent"
                assert (await log.verify()).ok
            after = [tuple(r) for r in await conn.fetch(columns)]
            assert after[:3] == before and after[3][1:5] == (new, "1", "alice", "intent")
            await _to_revision(url, "0001", down=True)  # through 0003 and 0002
            assert [tuple(r) for r in await conn.fetch(columns)] == after
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
