"""``audit_entry``: a reader's scope and a customer without a system find their page by
an index, on both stores.

* ``ix_audit_entry_system`` (``system, seq``), new: a reader's scope alone (``system IN
  (…)``, no ``system`` / ``customer_id`` filter) on ``/v1/audit`` and
  ``/v1/audit/changes``. Each system of the scope is read newest first by this index and
  the pages merged (``audit/scope.py``), so a page reads about as many rows as it shows,
  whatever the system's share of the log. Before, SQLite (no statistics) looked the
  systems up in ``ix_audit_entry_subject`` and sorted all their entries for one page
  (linear in the log for a common system), or, as ``/v1/audit/changes`` wrote it since
  0008, read the whole log by ``seq`` for a rare one.
* ``ix_audit_entry_subject``: ``customer_id, system, seq`` instead of ``system,
  customer_id, seq``. A subject (``system = ? AND customer_id = ?``: the Art. 15 export,
  both filters) is found as before; ``customer_id = ?`` without a system (an unscoped
  reader's ``/v1/audit?customer_id=``) now is too, where it read the whole table. The
  scope that ``system`` leading served is the new index's.

Cost: one index entry more per entry (a change: 13 on SQLite instead of 11);
docs/performance.md, "The audit review's slow queries", measures it. Both indexes are
built in one pass over the table each (on PostgreSQL under a lock that holds writers).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SUBJECT = "ix_audit_entry_subject"
_SYSTEM = "ix_audit_entry_system"


def upgrade() -> None:
    op.execute(f"DROP INDEX {_SUBJECT}")
    op.execute(f"CREATE INDEX {_SUBJECT} ON audit_entry (customer_id, system, seq)")
    op.execute(f"CREATE INDEX {_SYSTEM} ON audit_entry (system, seq)")


def downgrade() -> None:
    op.execute(f"DROP INDEX {_SYSTEM}")
    op.execute(f"DROP INDEX {_SUBJECT}")
    op.execute(f"CREATE INDEX {_SUBJECT} ON audit_entry (system, customer_id, seq)")
