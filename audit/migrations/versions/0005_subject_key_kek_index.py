"""An index on the master key that wraps each subject key: the check before a new key
is made (no other process re-wrapped the keys under another master key since this one
started) looked at every row of ``audit_subject_key`` per new subject; with the index
it is two index lookups (``audit/keyring.py`` ``OTHER_KEK_SQL``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_subject_key_kek", "audit_subject_key", ["kek_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_subject_key_kek", table_name="audit_subject_key")
