"""The shipped migrations create exactly the tables the SQLModel models describe."""

from __future__ import annotations

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
