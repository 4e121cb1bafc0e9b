"""``audit_entry``: on SQLite, the time index covers the trends.

On SQLite ``ix_audit_entry_time`` becomes ``(time, system, action, phase, outcome,
problem_code)`` - every column the trends read (``audit/review.py``: the day range, the scope, the
filter on action/phase/outcome and the ``GROUP BY``) - so SQLite answers the trends of a
day range from the index alone (``USING COVERING INDEX``) instead of looking each row of
the range up in the table (30 days of a 400,000-entry log: ~220 ms before, ~50-65 ms
after). The index keeps one entry per row, as before, and ``since``/``until`` of both
lists use its first column as they used the whole index; the entries are longer
(≈ +0.3 µs of SQLite's CPU per row). docs/performance.md, "The trends from the time
index alone", measures both.

PostgreSQL keeps ``(time)`` (the models describe SQLite's index; the index test says
so): its trends of every system were not faster with it (82-91 ms either way at
400,000 entries), and its planner (PostgreSQL 18's skip scan) took the wider index for
queries with no condition on ``time`` (resolve's ``phase = 'resolution'``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TIME = "ix_audit_entry_time"
#: the columns of the trend query, the day range first
COVERING = ("time", "system", "action", "phase", "outcome", "problem_code")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX {_TIME}")
        op.execute(f"CREATE INDEX {_TIME} ON audit_entry ({', '.join(COVERING)})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX {_TIME}")
        op.execute(f"CREATE INDEX {_TIME} ON audit_entry (time)")
