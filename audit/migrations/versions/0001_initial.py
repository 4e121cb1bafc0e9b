"""The audit store: entries, head, checkpoints, subject keys, open intents.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSON

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_GENERATED = ("audit_id", "time", "system", "customer_id", "actor", "action", "phase",
              "outcome", "intent_id")


def upgrade() -> None:
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    # VIRTUAL on SQLite (smaller rows, faster verify reads); PostgreSQL < 18 has only STORED
    stored = op.get_bind().dialect.name != "sqlite"
    op.create_table(
        "audit_entry",
        sa.Column("seq", seq, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text().with_variant(JSON(), "postgresql"), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        *(
            sa.Column(name, sa.Text(), sa.Computed(f"body ->> '{name}'", persisted=stored))
            for name in _GENERATED
        ),
    )
    op.create_index("ux_audit_entry_audit_id", "audit_entry", ["audit_id"], unique=True)
    op.create_index("ix_audit_entry_subject", "audit_entry", ["system", "customer_id", "seq"])
    op.create_index("ix_audit_entry_actor", "audit_entry", ["actor", "seq"])
    op.create_index("ix_audit_entry_outcome", "audit_entry", ["outcome", "seq"])
    op.create_index("ix_audit_entry_time", "audit_entry", ["time"])
    op.create_index("ix_audit_entry_intent", "audit_entry", ["intent_id"])

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_at", sa.Text(), nullable=True),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64, "checkpoint_seq": 0,
                           "checkpoint_at": None}])

    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("time", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
    )
    op.create_table(
        "audit_subject_key",
        sa.Column("key_id", sa.Text(), primary_key=True),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("kek_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("erased_at", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_subject_key_subject", "audit_subject_key",
                    ["system", "customer_id"])
    op.create_table(
        "audit_open_intent",
        sa.Column("audit_id", sa.Text(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_open_intent", "audit_subject_key", "audit_checkpoint", "audit_head",
                  "audit_entry"):
        op.drop_table(table)
