"""The audit store's tables (SQLModel). The migrations in ``audit/migrations`` create them.

``audit_entry`` keeps each entry as its canonical JSON ``body`` plus the chain columns;
the columns used for queries hold the body's members (``body ->> 'key'``). The models describe
them as generated columns, which they are on SQLite; on PostgreSQL the writer sends them
with the body it built (migration 0006; a trigger sets them from the body for a row
inserted without them, and on every update), and verify checks that they agree with the
hashed body. On PostgreSQL ``body`` is of type ``json``, which keeps the exact text. On
both stores the indexes of the columns that are NULL on many rows are partial (PostgreSQL
since 0006, SQLite since 0008), and no index is kept that no query uses (0008 lists
which queries use each; 0009 gives a subject's index the customer first and adds one of
``system, seq`` for a reader's scope; 0010 has SQLite's time index cover the trends).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Float,
    Index,
    Integer,
    LargeBinary,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlmodel import Field, SQLModel

GENERATED = (
    "audit_id",
    "time",
    "system",
    "customer_id",
    "actor",
    "action",
    "phase",
    "outcome",
    "intent_id",
    "problem_code",  # 0002: the refusal code, for the trend panel
    "key_id",  # 0002: the subject key an entry's values are sealed under
)


# INTEGER PRIMARY KEY is SQLite's rowid alias (64-bit): no second index to maintain.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


def _set(name: str) -> dict[str, Any]:
    """A partial index (PostgreSQL 0006, SQLite 0008): only the rows where ``name`` has a
    value. Both planners use it for ``name = ?`` and ``name IN (…)``."""
    where = text(f"{name} IS NOT NULL")
    return {"postgresql_where": where, "sqlite_where": where}  # an Index's dialect keywords


def _generated(name: str) -> Column[str]:
    return Column(name, Text, Computed(f"body ->> '{name}'", persisted=True))


class AuditEntry(SQLModel, table=True):
    """One entry of the chain."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ux_audit_entry_audit_id", "audit_id", unique=True),
        Index("ix_audit_entry_subject", "customer_id", "system", "seq"),
        Index("ix_audit_entry_system", "system", "seq"),
        Index("ix_audit_entry_actor", "actor", "seq"),
        Index("ix_audit_entry_outcome", "outcome", "seq", **_set("outcome")),
        # 0010, SQLite: every column the trends read, so they read this index alone;
        # PostgreSQL keeps (time) (tests/audit/test_entry_indexes.py: PG_TIME)
        Index(
            "ix_audit_entry_time", "time", "system", "action", "phase", "outcome", "problem_code"
        ),
        Index("ix_audit_entry_intent", "intent_id", **_set("intent_id")),
        Index("ix_audit_entry_key", "key_id", **_set("key_id")),
    )

    seq: int = Field(sa_column=Column(_SEQ, primary_key=True, autoincrement=False))
    body: str = Field(sa_column=Column(Text().with_variant(JSON(), "postgresql"), nullable=False))
    prev_hash: str = Field(sa_column=Column(Text, nullable=False))
    hash: str = Field(sa_column=Column(Text, nullable=False))
    audit_id: str | None = Field(default=None, sa_column=_generated("audit_id"))
    time: str | None = Field(default=None, sa_column=_generated("time"))
    system: str | None = Field(default=None, sa_column=_generated("system"))
    customer_id: str | None = Field(default=None, sa_column=_generated("customer_id"))
    actor: str | None = Field(default=None, sa_column=_generated("actor"))
    action: str | None = Field(default=None, sa_column=_generated("action"))
    phase: str | None = Field(default=None, sa_column=_generated("phase"))
    outcome: str | None = Field(default=None, sa_column=_generated("outcome"))
    intent_id: str | None = Field(default=None, sa_column=_generated("intent_id"))
    problem_code: str | None = Field(default=None, sa_column=_generated("problem_code"))
    key_id: str | None = Field(default=None, sa_column=_generated("key_id"))


class AuditHead(SQLModel, table=True):
    """The single head row: the chain append is serialised on it (row lock / write lock)."""

    __tablename__ = "audit_head"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(sa_column=Column(Text, nullable=False))
    checkpoint_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    checkpoint_at: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditCheckpoint(SQLModel, table=True):
    """A signed head: Ed25519 over (seq, head hash, time)."""

    __tablename__ = "audit_checkpoint"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(sa_column=Column(Text, nullable=False))
    time: str = Field(sa_column=Column(Text, nullable=False))
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    signature: str = Field(sa_column=Column(Text, nullable=False))


class AuditSubjectKey(SQLModel, table=True):
    """A data subject's data key, wrapped by the master key; NULL once erased."""

    __tablename__ = "audit_subject_key"
    __table_args__ = (
        Index("ix_audit_subject_key_subject", "customer_id", "system"),
        Index("ix_audit_subject_key_expires", "expires_at"),
        Index("ix_audit_subject_key_kek", "kek_id"),
    )

    key_id: str = Field(sa_column=Column(Text, primary_key=True))
    system: str = Field(sa_column=Column(Text, nullable=False))
    customer_id: str = Field(sa_column=Column(Text, nullable=False))
    wrapped: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    kek_id: str = Field(sa_column=Column(Text, nullable=False))
    created_at: str = Field(sa_column=Column(Text, nullable=False))
    erased_at: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: the end of the retention period of the values this key seals (UTC, the entries'
    #: time format); NULL: kept until erased (no retention stated, or a key made before 0002)
    expires_at: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: why ``wrapped`` is NULL: ``retention``, or NULL for an erasure (Art. 17)
    erased_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditOpenIntent(SQLModel, table=True):
    """Intents written but not yet closed by an outcome: what the reconciler reads."""

    __tablename__ = "audit_open_intent"

    audit_id: str = Field(sa_column=Column(Text, primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: str = Field(sa_column=Column(Text, nullable=False))


class IdempotencyKey(SQLModel, table=True):
    """One (principal, Idempotency-Key) and the first answer (:mod:`audit.idempotency`)."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        Index("ix_idempotency_key_expires", "expires_at"),
        Index("ix_idempotency_key_subject", "system", "customer_id"),
    )

    key_hash: str = Field(sa_column=Column(Text, primary_key=True))
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    owner: str = Field(sa_column=Column(Text, nullable=False))
    system: str = Field(sa_column=Column(Text, nullable=False))
    customer_id: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float = Field(sa_column=Column(Float, nullable=False))
    claimed_until: float = Field(sa_column=Column(Float, nullable=False))
    expires_at: float = Field(sa_column=Column(Float, nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    answer: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
