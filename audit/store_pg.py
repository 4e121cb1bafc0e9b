"""The PostgreSQL backend (asyncpg). The chain append is serialised on the head row
(``SELECT … FOR UPDATE``) so any number of replicas on one database keep one chain;
writes to one customer are serialised with a session advisory lock.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from functools import lru_cache
from typing import Any

import asyncpg

from audit.backend import HEAD_SQL, INSERT_ENTRY, Row, Statement

_PLACEHOLDER = re.compile(r"\?")
# A batch of entries as one statement over arrays: far fewer round trips than executemany.
_BULK_ENTRY = (
    "INSERT INTO audit_entry (seq, body, prev_hash, hash)"
    " SELECT * FROM unnest($1::bigint[], $2::json[], $3::text[], $4::text[])"
)


async def _run(conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    if sql == INSERT_ENTRY and len(rows) > 1:
        await conn.execute(_BULK_ENTRY, *(list(column) for column in zip(*rows, strict=True)))
    elif rows:
        await conn.executemany(numbered(sql), rows)


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders to asyncpg's ``$1, $2, …``; entry bodies read as ``text``
    (asyncpg's text codec is about three times faster than its ``json`` one, and the
    body is only ever wanted as the exact text the hash covers)."""
    counter = iter(range(1, 10_000))
    if sql.startswith("SELECT "):
        sql = sql.replace("seq, body, ", "seq, body::text, ").replace(
            "e.seq, e.body, ", "e.seq, e.body::text, "
        )
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


class _Tx:
    def __init__(self, pool: Any, conn: Any, tr: Any, head: Row) -> None:
        self._pool, self._conn, self._tr = pool, conn, tr
        self.head = head
        self._done = False

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(numbered(sql), *params)]

    async def commit(self, statements: Sequence[Statement]) -> None:
        try:
            for sql, rows in statements:
                await _run(self._conn, sql, rows)
            await self._tr.commit()
        except BaseException:
            await self._safe_rollback()
            raise
        finally:
            await self._release()

    async def rollback(self) -> None:
        try:
            await self._safe_rollback()
        finally:
            await self._release()

    async def _safe_rollback(self) -> None:
        if not self._done:
            with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await self._tr.rollback()

    async def _release(self) -> None:
        if not self._done:
            self._done = True
            await self._pool.release(self._conn)


class PgBackend:
    kind = "postgresql"

    def __init__(self, pool: Any, lock_pool: Any) -> None:
        self._pool = pool
        # Advisory locks are held for a whole request, each on its own connection. They
        # come from a pool of their own: holders of every lock connection must still be
        # able to append (through ``_pool``), or a burst of requests would deadlock.
        self._lock_pool = lock_pool

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 6, max_locks: int = 24) -> PgBackend:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, command_timeout=30, timeout=10
        )
        try:
            lock_pool = await asyncpg.create_pool(
                dsn, min_size=0, max_size=max_locks, command_timeout=None, timeout=10
            )
        except BaseException:
            await pool.close()
            raise
        return cls(pool, lock_pool)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]

    async def run(self, statements: Sequence[Statement]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, rows in statements:
                await _run(conn, sql, rows)

    async def chain_tx(self) -> _Tx:
        conn = await self._pool.acquire()
        try:
            tr = conn.transaction()
            await tr.start()
            head = await conn.fetchrow(HEAD_SQL + " FOR UPDATE")
            if head is None:
                raise asyncpg.PostgresError("audit_head row missing")
        except BaseException:
            await self._pool.release(conn)
            raise
        return _Tx(self._pool, conn, tr, tuple(head))

    def subject_lock(self, key: int) -> AbstractAsyncContextManager[None]:
        return self._advisory(key)

    @asynccontextmanager
    async def _advisory(self, key: int) -> AsyncIterator[None]:
        async with self._lock_pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", key)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def close(self) -> None:
        await self._lock_pool.close()
        await self._pool.close()
