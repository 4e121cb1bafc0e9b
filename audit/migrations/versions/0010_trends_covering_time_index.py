"""``audit_entry``: on SQLite, the time index covers the trends.

On SQLite ``ix_audit_entry_time`` becomes ``(time, system, action, phase, outcome,
problem_code)`` - every column the trends read (``audit/review.py``: the day range, the
scope, the filter on action/phase/outcome and the ``GROUP BY``) - so SQLite answers the
trends of a day range from the index alone instead of reading each row of the range
from the table (30 days of a 400,000-entry log: ~200-220 ms before, ~50-65 ms after).
SQLite 3.40's ``EXPLAIN QUERY PLAN`` still says ``USING INDEX``, not ``COVERING``, for
an index of generated columns: its seek of the row is deferred and never made, as the
query's bytecode shows (``tests/audit/test_trends_index.py``). The index keeps one entry
per row, as before, and ``since``/``until`` of both lists use its first column as they
used the whole index; the entries are longer (≈ +0.3 µs of SQLite's CPU per row).
docs/performance.md, "The trends from the time index alone", measures both.

PostgreSQL keeps ``(time)`` (the models describe SQLite's index; the index test says
so): its trends of every system were not faster with it (91 / 154 ms and 82 / 82 ms,
before / after, at 400,000 entries), and its planner took the wider index, read whole,
for a query with no condition on ``time`` (resolve's ``phase = 'resolution'``, in the
index test's generic plan on PostgreSQL 15).

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
