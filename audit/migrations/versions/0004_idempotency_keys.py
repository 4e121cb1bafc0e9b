"""Idempotency keys: one row per (principal, Idempotency-Key), kept for the retention
window, holding the first answer of a write so that a retry gets it again
(:mod:`audit.idempotency`).

``key_hash`` is a keyed hash (HMAC under a key derived from the master key) of the
principal and the client's key - the key itself is never stored. ``fingerprint`` is a
SHA-256 of the canonical JSON of the request (method, path and query, body).
``owner``/``claimed_until`` mark a request in flight (a claim of a process that died
expires); ``status``/``answer`` are set once the first answer is final; ``answer`` is
sealed (AES-256-GCM). ``system``/``customer_id`` name the data subject, whose erasure
deletes the rows in the transaction that destroys their keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("key_hash", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("claimed_until", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
    )
    op.create_index("ix_idempotency_key_expires", "idempotency_key", ["expires_at"])
    op.create_index(
        "ix_idempotency_key_subject", "idempotency_key", ["system", "customer_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_key_subject", "idempotency_key")
    op.drop_index("ix_idempotency_key_expires", "idempotency_key")
    op.drop_table("idempotency_key")
