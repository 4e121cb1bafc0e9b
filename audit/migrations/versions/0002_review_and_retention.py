"""Review and retention: the refusal code and the sealing key as generated query columns
of ``audit_entry`` (the trend panel counts refusals by code without reading the bodies;
the retention job finds the entries a key sealed), and on ``audit_subject_key`` the end
of the retention period of the values a key seals, and why a destroyed key was destroyed.

Revision ID: 0002_review_and_retention
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_review_and_retention"
down_revision = "0001"
branch_labels = None
depends_on = None

_GENERATED = ("problem_code", "key_id")


def upgrade() -> None:
    # SQLite adds only VIRTUAL generated columns to a table that exists; PostgreSQL < 18
    # has only STORED ones (as in 0001)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in _GENERATED:
        kind = "VIRTUAL" if sqlite else "STORED"
        column_type = "TEXT" if sqlite else "text"
        op.execute(
            f"ALTER TABLE audit_entry ADD COLUMN {name} {column_type}"
            f" GENERATED ALWAYS AS (body ->> '{name}') {kind}"
        )
    op.create_index("ix_audit_entry_key", "audit_entry", ["key_id"])
    op.create_index("ix_audit_entry_problem", "audit_entry", ["problem_code", "seq"])
    op.add_column("audit_subject_key", sa.Column("expires_at", sa.Text(), nullable=True))
    op.add_column("audit_subject_key", sa.Column("erased_reason", sa.Text(), nullable=True))
    op.create_index("ix_audit_subject_key_expires", "audit_subject_key", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_subject_key_expires", "audit_subject_key")
    with op.batch_alter_table("audit_subject_key") as batch:
        batch.drop_column("erased_reason")
        batch.drop_column("expires_at")
    op.drop_index("ix_audit_entry_problem", "audit_entry")
    op.drop_index("ix_audit_entry_key", "audit_entry")
    for name in reversed(_GENERATED):
        op.execute(f"ALTER TABLE audit_entry DROP COLUMN {name}")
