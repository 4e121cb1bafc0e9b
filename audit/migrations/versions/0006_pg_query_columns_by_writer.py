"""PostgreSQL: the writer sends the query columns of a new entry (it has just built the
body they come from) instead of the trigger of 0002 parsing the body as ``jsonb`` for
every row it inserts (about 19 of 73 us of server CPU per entry, docs/performance.md,
"PostgreSQL: the server's CPU per entry"); and four indexes of columns that are NULL on
many rows hold only the rows that have a value.

The trigger stays for the rows that do not bring their columns: an ``INSERT`` whose
``audit_id`` is NULL (a writer of an earlier release during a rolling upgrade, a row
written by hand) and every ``UPDATE`` (the product never updates an entry; a migration
or an edit by hand still gets the columns of the body it leaves). A column sent that
disagrees with the body is no longer impossible: ``verify`` compares every row's
columns with its hashed body and reports a difference as tampering (audit/verify.py).

Partial indexes (``WHERE column IS NOT NULL``): ``intent_id`` (outcomes only),
``outcome`` (not on intents), ``key_id`` (entries with sealed values only),
``problem_code`` (refusals only). The queries that use them say ``IS NOT NULL`` too.
Rows already there keep their values; the indexes are rebuilt (one pass over the table).

SQLite is unchanged: its query columns are generated, its indexes whole.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: name: its columns (each index is partial on the first column)
_PARTIAL = {
    "ix_audit_entry_intent": "intent_id",
    "ix_audit_entry_outcome": "outcome, seq",
    "ix_audit_entry_key": "key_id",
    "ix_audit_entry_problem": "problem_code, seq",
}
_FUNCTION = "EXECUTE FUNCTION audit_entry_query_columns()"


def _indexes(partial: bool) -> None:
    for name, columns in _PARTIAL.items():
        where = f" WHERE {columns.split(',')[0]} IS NOT NULL" if partial else ""
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON audit_entry ({columns}){where}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER audit_entry_query_columns ON audit_entry")
    op.execute(
        "CREATE TRIGGER audit_entry_query_columns BEFORE UPDATE ON audit_entry"
        f" FOR EACH ROW {_FUNCTION}"
    )
    op.execute(
        "CREATE TRIGGER audit_entry_query_columns_unsent BEFORE INSERT ON audit_entry"
        f" FOR EACH ROW WHEN (NEW.audit_id IS NULL) {_FUNCTION}"
    )
    _indexes(partial=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _indexes(partial=False)
    op.execute("DROP TRIGGER audit_entry_query_columns_unsent ON audit_entry")
    op.execute("DROP TRIGGER audit_entry_query_columns ON audit_entry")
    op.execute(
        "CREATE TRIGGER audit_entry_query_columns BEFORE INSERT OR UPDATE ON audit_entry"
        f" FOR EACH ROW {_FUNCTION}"
    )
