"""The index that finds a subject's keys leads with ``customer_id``, then ``system``.

Before a batch seals for a subject this process has no key for, the keyring looks up
the live keys of all such subjects in one query, ``system = ? AND customer_id IN (…)``
(``audit/keyring.py`` ``_lookup``). On ``(system, customer_id)`` PostgreSQL 15 uses the
list of ids as an index condition only when its statistics say ``system`` alone is not
selective; until the table's first ANALYZE (autovacuum's, a minute or more after a fresh
start) it read every key of the system and filtered them - in the bench's fresh store
about 1.5 ms per batch at 4,000 keys, most of the chain writer's server CPU under load
(issue 11). With the ids as the index's first column the list is always the index
condition; an equality on both columns (erasure, expiry) uses it as before, and no query
looks keys up by ``system`` alone. SQLite uses either order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEX, _TABLE = "ix_audit_subject_key_subject", "audit_subject_key"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, ["customer_id", "system"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, ["system", "customer_id"])
