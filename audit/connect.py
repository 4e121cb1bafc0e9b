"""Reaching a store: the backend for a URL, and the checks before a log uses it (schema
and head row there, the master key the one that wrapped its subject keys).

Every failure is an audit error that names the kind of store, never its URL (which may
hold a password): ``StoreNotInitialised`` (run ``gdpr-gateway db upgrade``),
``KeyMismatch``, or ``AuditUnavailable``.
"""

from __future__ import annotations

from audit import crypto
from audit.backend import HEAD_SQL, Backend, Row
from audit.errors import AuditError, AuditUnavailable, KeyMismatch, StoreNotInitialised
from audit.urls import parse_url


async def connect_backend(url: str, *, max_locks: int = 24) -> Backend:
    store = parse_url(url)
    try:
        if store.kind == "sqlite":
            from audit.store_sqlite import SqliteBackend

            assert store.path is not None
            if not store.path.exists():
                raise StoreNotInitialised(
                    "the audit store file does not exist: run `gdpr-gateway db upgrade`"
                )
            return await SqliteBackend.connect(store.path)
        from audit.store_pg import PgBackend

        assert store.dsn is not None
        return await PgBackend.connect(store.dsn, max_locks=max_locks)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"cannot reach the audit store ({type(exc).__name__})") from exc


async def migrate(url: str) -> None:
    """Bring the store's schema up to date (``AuditLog.open(create=True)``)."""
    from audit.migrate import upgrade

    try:
        await upgrade(url)
    except AuditError:
        raise
    except Exception as exc:  # an unreachable store: say which kind, not the URL
        raise AuditUnavailable(f"cannot migrate the audit store ({type(exc).__name__})") from exc


async def read_head(backend: Backend) -> Row:
    """(seq, hash, checkpoint_seq, checkpoint_at) of the chain's head."""
    try:
        rows = await backend.fetchall(HEAD_SQL)
    except Exception as exc:
        raise StoreNotInitialised(
            "the audit store has no schema: run `gdpr-gateway db upgrade`"
        ) from exc
    if not rows:
        raise StoreNotInitialised("the audit store has no head row: run `gdpr-gateway db upgrade`")
    return rows[0]


async def check_master_key(backend: Backend, master_key: bytes) -> None:
    """KeyMismatch unless every live subject key is wrapped by ``master_key``."""
    keks = await backend.fetchall(
        "SELECT DISTINCT kek_id FROM audit_subject_key WHERE wrapped IS NOT NULL"
    )
    if any(row[0] != crypto.kek_id(master_key) for row in keks):
        raise KeyMismatch("the master key does not match the store's subject keys")
