"""PostgreSQL: the query columns of audit_entry filled by a trigger that reads the body
once, instead of nine generated columns that each parsed it (an insert cost about 50 us
of server CPU a row, 25 us after; docs/performance.md, "Audit log"). SQLite keeps its
VIRTUAL generated columns (its JSON functions reuse one parse: about 3 us a row).

The trigger runs before every INSERT and UPDATE of a row and sets all nine columns from
``body``, whatever the statement gave them: as with generated columns, they cannot be
set on their own and cannot disagree with what the hash covers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = ("audit_id", "time", "system", "customer_id", "actor", "action", "phase",
            "outcome", "intent_id")  # fmt: skip
_INDEXES = {
    "ux_audit_entry_audit_id": (["audit_id"], True),
    "ix_audit_entry_subject": (["system", "customer_id", "seq"], False),
    "ix_audit_entry_actor": (["actor", "seq"], False),
    "ix_audit_entry_outcome": (["outcome", "seq"], False),
    "ix_audit_entry_time": (["time"], False),
    "ix_audit_entry_intent": (["intent_id"], False),
}
_ASSIGN = "\n".join(f"    NEW.{c} := j ->> '{c}';" for c in _COLUMNS)
_FUNCTION = f"""
CREATE FUNCTION audit_entry_query_columns() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    j jsonb := NEW.body::jsonb;
BEGIN
{_ASSIGN}
    RETURN NEW;
END
$$
"""
_TRIGGER = (
    "CREATE TRIGGER audit_entry_query_columns BEFORE INSERT OR UPDATE ON audit_entry"
    " FOR EACH ROW EXECUTE FUNCTION audit_entry_query_columns()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)
    for column in _COLUMNS:  # the stored values stay; no table rewrite
        op.execute(f"ALTER TABLE audit_entry ALTER COLUMN {column} DROP EXPRESSION")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER audit_entry_query_columns ON audit_entry")
    op.execute("DROP FUNCTION audit_entry_query_columns()")
    for column in _COLUMNS:  # a column cannot become generated again: add it anew
        op.drop_column("audit_entry", column)
        op.add_column(
            "audit_entry",
            sa.Column(column, sa.Text(), sa.Computed(f"body ->> '{column}'", persisted=True)),
        )
    for name, (columns, unique) in _INDEXES.items():
        op.create_index(name, "audit_entry", columns, unique=unique)
