"""``audit_entry``'s indexes: the three of columns that are NULL on many rows are partial
on SQLite too (as on PostgreSQL since 0006), and the index of ``problem_code``, which no
query uses, goes on both stores.

Each index and the queries that need it (``tests/audit/test_entry_indexes.py`` checks
that each still plans with it, on both stores):

* ``ux_audit_entry_audit_id`` (every row; unique): an entry by id (``Reader.row``: get,
  reveal, the change route, resolve; verify's scoped ``first_bad``), the open intents'
  join (``Reader.open_intents`` / ``open_intent``: reconcile, finish after a restart).
* ``ix_audit_entry_subject`` (``system, customer_id, seq``): a subject's entries (Art. 15
  export, ``Reader.of_subject``), the ``system`` / ``customer_id`` filters of
  ``/v1/audit`` and ``/v1/audit/changes`` and a reader's scope (``system IN``).
* ``ix_audit_entry_actor`` (``actor, seq``): the ``actor`` filter of both lists.
* ``ix_audit_entry_time``: ``since`` / ``until`` of both lists, the trends' day range.
* ``ix_audit_entry_outcome`` (``outcome, seq``; NULL on intents): ``/v1/audit?outcome=``,
  the unresolved ``unknown`` outcomes (``audit/resolve.py``).
* ``ix_audit_entry_intent`` (NULL but on outcomes and resolutions): the outcomes of a
  page of changes (``intent_id IN``), ``Reader.following``, resolve's ``NOT EXISTS`` and
  its check before writing a resolution.
* ``ix_audit_entry_key`` (NULL but on entries with sealed values): the entries a key
  sealed (retention's count, ``audit/retention.py`` ``_counts``).
* ``ix_audit_entry_problem`` (``problem_code, seq``): none - the trends read the column
  in the rows the time range finds, nothing filters or sorts by it. Dropped.

The chain's own reads (verify, export to a file, the erasures since a seq) go by
``seq``, the primary key. The review's ``intent_id IS NULL`` (its rows) used the whole
``ix_audit_entry_intent`` on SQLite where no other index applied, in ``seq`` order; it
now reads by ``seq`` itself (about half the entries match) or by the index of its other
filters. For a reader's scope alone (``system IN (…)``) SQLite, which keeps no
statistics, would then look the systems up in ``ix_audit_entry_subject`` and sort all
their entries for one page: the review writes the scope so that it does not
(``audit/review.py`` ``_scope_clause``).

Why: every index is a B-tree insert per entry; on SQLite an entry row cost 15.6 µs with
the 8 indexes, 8.1 without (docs/performance.md, "SQLite writer thread"). A change (intent
and outcome) made 16 index entries; now 11. The partial indexes are rebuilt (one pass
over the table; on SQLite the generated columns are computed from the bodies).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: name: its columns (each index is partial on the first column)
_PARTIAL = {
    "ix_audit_entry_intent": "intent_id",
    "ix_audit_entry_outcome": "outcome, seq",
    "ix_audit_entry_key": "key_id",
}
_PROBLEM = "ix_audit_entry_problem"


def _sqlite_indexes(partial: bool) -> None:
    for name, columns in _PARTIAL.items():
        where = f" WHERE {columns.split(',')[0]} IS NOT NULL" if partial else ""
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON audit_entry ({columns}){where}")


def upgrade() -> None:
    op.execute(f"DROP INDEX {_PROBLEM}")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_indexes(partial=True)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _sqlite_indexes(partial=False)
    where = "" if sqlite else " WHERE problem_code IS NOT NULL"  # as 0003 / 0006 made it
    op.execute(f"CREATE INDEX {_PROBLEM} ON audit_entry (problem_code, seq){where}")
