"""Review and retention: the refusal code and the sealing key as query columns of
``audit_entry`` (the trend panel counts refusals by code without reading the bodies; the
retention job finds the entries a key sealed), and on ``audit_subject_key`` the end of
the retention period of the values a key seals, and why a destroyed key was destroyed.

The query columns follow each store's way (0002): on SQLite VIRTUAL generated columns;
on PostgreSQL plain columns that the trigger of 0002 fills from the body, which this
revision extends to eleven columns (and back on downgrade). Either way they cannot be set
on their own nor disagree with what the hash covers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NEW = ("problem_code", "key_id")
_BEFORE = ("audit_id", "time", "system", "customer_id", "actor", "action", "phase",
           "outcome", "intent_id")  # fmt: skip


def _function(columns: tuple[str, ...]) -> str:
    """The trigger function of 0002, setting ``columns`` from the body."""
    assign = "\n".join(f"    NEW.{c} := j ->> '{c}';" for c in columns)
    return f"""
CREATE OR REPLACE FUNCTION audit_entry_query_columns() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    j jsonb := NEW.body::jsonb;
BEGIN
{assign}
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds only VIRTUAL generated columns to a table that exists
        for name in _NEW:
            op.execute(
                f"ALTER TABLE audit_entry ADD COLUMN {name} TEXT"
                f" GENERATED ALWAYS AS (body ->> '{name}') VIRTUAL"
            )
    else:
        for name in _NEW:
            op.add_column("audit_entry", sa.Column(name, sa.Text(), nullable=True))
        op.execute(_function(_BEFORE + _NEW))
        # the rows already there: the trigger sets every column from the body
        op.execute(
            "UPDATE audit_entry SET problem_code = body::jsonb ->> 'problem_code',"
            " key_id = body::jsonb ->> 'key_id'"
            " WHERE body::jsonb -> 'problem_code' IS NOT NULL OR body::jsonb -> 'key_id' IS NOT NULL"
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
    if op.get_bind().dialect.name != "sqlite":
        op.execute(_function(_BEFORE))
    for name in reversed(_NEW):
        op.execute(f"ALTER TABLE audit_entry DROP COLUMN {name}")
