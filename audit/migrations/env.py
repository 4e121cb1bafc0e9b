"""Alembic environment of the audit store; run through :func:`audit.migrate.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import audit.models  # noqa: F401 - registers the tables on SQLModel.metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not offered
    raise RuntimeError("run the audit migrations through audit.migrate.upgrade(url)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table="audit_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
