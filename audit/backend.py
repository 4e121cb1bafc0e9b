"""What the audit log needs from a database; SQLite and PostgreSQL implement it.

SQL is written once with ``?`` placeholders; the PostgreSQL backend numbers them.
The chain transaction holds the database-wide append lock from ``chain_tx()`` to
``commit``/``rollback``: SQLite's write lock (``BEGIN IMMEDIATE``), or PostgreSQL's row
lock on the head row (``SELECT … FOR UPDATE``). Every process appends under it, so the
chain stays one chain whatever the number of replicas.

Every method raises audit errors only: ``ValueRefused`` for a value the store refuses,
``AuditUnavailable`` for any other failure of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]
# One statement and the parameter rows to run it with (``executemany``).
Statement = tuple[str, Sequence[Sequence[Any]]]

INSERT_ENTRY = "INSERT INTO audit_entry (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)"
HEAD_SQL = "SELECT seq, hash, checkpoint_seq, checkpoint_at FROM audit_head WHERE id = 1"


class ChainTx(Protocol):
    head: Row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def commit(self, statements: Sequence[Statement]) -> None: ...

    async def rollback(self) -> None: ...


class Backend(Protocol):
    kind: str

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def run(self, statements: Sequence[Statement]) -> None: ...

    async def chain_tx(self) -> ChainTx: ...

    def subject_lock(self, key: int, timeout: float) -> AbstractAsyncContextManager[None]:
        """Hold the lock ``key`` across processes (LockTimeout after ``timeout`` s)."""
        ...

    def job_lock(self, key: int) -> AbstractAsyncContextManager[bool]:
        """Try to hold the lock ``key`` across processes for a job, without waiting:
        yields whether it is held (False: another process runs the job now)."""
        ...

    def lock_use(self) -> tuple[int, int]:
        """(lock connections held now, the most there can be); (0, 0) without any."""
        ...

    async def close(self) -> None: ...
