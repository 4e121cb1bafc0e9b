"""Schema migrations of the audit store (alembic scripts shipped in ``audit/migrations``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from audit.urls import parse_url

_SCRIPTS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: replicas starting together migrate one after the other.
_MIGRATION_LOCK = 0x6A7D_17A0_0001


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(url: str) -> None:
    """Bring the audit schema at ``url`` to the newest revision (idempotent)."""
    store = parse_url(url)
    if store.path is not None:
        store.path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(store.sqlalchemy_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()
