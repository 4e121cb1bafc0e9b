"""The PostgreSQL backend (asyncpg). The chain append is serialised on the head row
(``SELECT … FOR UPDATE``) so any number of replicas on one database keep one chain;
writes to one customer are serialised with a session advisory lock, on a shared lock
session (:mod:`audit.pg_lock_sessions`) or, while another session holds it, waited for on
a dedicated connection (:mod:`audit.pg_locks`).

Every failure of the store surfaces as an audit error, never as a driver's or a socket's:
a value the server refuses (a data error, an index row too large) is the caller's
:class:`ValueRefused`; anything else (refused or cut connections, a server going away) is
:class:`AuditUnavailable`. Releasing a customer's lock never raises: the lock belongs to
the session, and a session that died took its locks with it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from audit.backend import HEAD_SQL, INSERT_ENTRY, ChainStep, Row, Statement, StepRun
from audit.errors import AuditError, AuditUnavailable, ValueRefused
from audit.failures import swallowed
from audit.pg_lock_sessions import Lease, SharedLocks
from audit.pg_locks import UNAVAILABLE, HeldLock, LockConnections
from audit.pg_write import one_statement

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\?")
# A batch of entries as one statement over arrays: far fewer round trips than executemany.
_BULK_ENTRY = (
    "INSERT INTO audit_entry (seq, body, prev_hash, hash)"
    " SELECT * FROM unnest($1::bigint[], $2::json[], $3::text[], $4::text[])"
)
# What the server says about a value (class 22 data exception, class 54 program limit
# exceeded: an index row over 2,704 bytes), and a text the driver cannot encode.
_REFUSED = (asyncpg.DataError, asyncpg.ProgramLimitExceededError, UnicodeEncodeError)
# Everything else a store can throw at us; a bug of ours (TypeError, …) is not among them.
_UNAVAILABLE = UNAVAILABLE
_BEGIN = "BEGIN"
_BEGIN_NOT_DURABLE = "BEGIN; SET LOCAL synchronous_commit TO off"


@contextmanager
def _store_errors() -> Iterator[None]:
    """Driver and socket errors as audit errors; the message names the kind, no values."""
    try:
        yield
    except AuditError:
        raise
    except _REFUSED as exc:
        raise ValueRefused(
            f"the audit store refuses a value of this entry ({type(exc).__name__})"
        ) from exc
    except _UNAVAILABLE as exc:
        raise AuditUnavailable(f"the audit store failed ({type(exc).__name__})") from exc


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
    """A chain transaction: ``BEGIN`` … ``COMMIT`` sent as plain queries (no asyncpg
    ``Transaction`` object); its writes as one statement where they can be
    (:mod:`audit.pg_write`)."""

    def __init__(self, pool: Any, conn: Any, head: Row) -> None:
        self._pool, self._conn = pool, conn
        self.head = head
        self._done = False

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _store_errors():
            return [tuple(r) for r in await self._conn.fetch(numbered(sql), *params)]

    async def commit(self, statements: Sequence[Statement]) -> None:
        try:
            with _store_errors():
                one = one_statement(statements)
                if one is not None:
                    await self._conn.execute(one[0], *one[1])
                else:
                    for sql, rows in statements:
                        await _run(self._conn, sql, rows)
                await self._conn.execute("COMMIT")
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
            with swallowed(log, "audit store rollback", *_UNAVAILABLE):
                await self._conn.execute("ROLLBACK")

    async def _release(self) -> None:
        if not self._done:
            self._done = True
            await _release(self._pool, self._conn)


class PgBackend:
    kind = "postgresql"

    def __init__(self, pool: Any, locks: LockConnections, shared: SharedLocks) -> None:
        self._pool = pool
        # Advisory locks are held for a whole request: a customer's on a shared lock
        # session (audit.pg_lock_sessions), on a dedicated connection when another
        # session holds it (the blocking wait) and for a job (audit.pg_locks). They are
        # connections of their own: holders of locks must still be able to append
        # (through ``_pool``), or a burst of requests would deadlock.
        self._locks = locks
        self._shared = shared

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 6, max_locks: int = 24) -> PgBackend:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, command_timeout=30, timeout=10,
            reset=_no_reset_query,
        )
        return cls(pool, LockConnections(dsn, max_locks), SharedLocks(dsn))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _store_errors():
            async with self._pool.acquire() as conn:
                return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]

    async def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        with _store_errors():
            async with self._pool.acquire() as conn:
                rows: list[Sequence[Any]] = await conn.fetch(numbered(sql), *params)
                return rows

    async def run(self, statements: Sequence[Statement]) -> None:
        with _store_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                for sql, rows in statements:
                    await _run(conn, sql, rows)

    async def chain_tx(self, *, durable: bool = True) -> _Tx:
        with _store_errors():
            conn = await self._pool.acquire()
        try:
            with _store_errors():
                # one round trip; not durable: its commit does not wait for the WAL flush
                await conn.execute(_BEGIN if durable else _BEGIN_NOT_DURABLE)
                head = await conn.fetchrow(HEAD_SQL + " FOR UPDATE")
            if head is None:
                raise AuditUnavailable("the audit_head row is missing")
        except BaseException:
            await _release(self._pool, conn)
            raise
        return _Tx(self._pool, conn, tuple(head))

    async def chain(self, step: ChainStep, *, durable: bool = True) -> None:
        tx = await self.chain_tx(durable=durable)
        try:
            run = StepRun(step, tx.head)
            query = run.query(None)
            while query is not None:
                query = run.query(await tx.fetchall(*query))
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit(run.statements)

    async def append_if_head(
        self, expected: tuple[int, str], statements: Sequence[Statement], *, durable: bool
    ) -> bool:
        one = one_statement(statements, expected=expected, durable=durable)
        if one is not None:  # one round trip, in a transaction of its own
            with _store_errors():
                async with self._pool.acquire() as conn:
                    return bool(await conn.fetchval(one[0], *one[1]))
        tx = await self.chain_tx(durable=durable)
        if (int(tx.head[0]), tx.head[1]) != expected:
            await tx.rollback()
            return False
        await tx.commit(statements)
        return True

    def subject_lock(
        self, key: int, timeout: float
    ) -> AbstractAsyncContextManager[Lease | HeldLock]:
        return self._subject_lock(key, timeout)

    @asynccontextmanager
    async def _subject_lock(self, key: int, seconds: float) -> AsyncIterator[Lease | HeldLock]:
        """A customer's lock: on a shared session when no other session holds it, else
        the blocking wait on a dedicated connection, within what is left of ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        lease = await self._shared.take(key, seconds)
        if lease is None:
            async with self._locks.subject(key, max(0.001, deadline - loop.time())) as held:
                yield held
            return
        try:
            yield lease
        finally:
            self._shared.release(lease)  # sent, not waited for (audit.pg_lock_sessions)

    def job_lock(self, key: int) -> AbstractAsyncContextManager[bool]:
        return self._locks.job(key)

    def lock_use(self) -> tuple[int, int]:
        """(dedicated lock connections held by contended writes now, the most there can
        be); a write whose lock no other session held takes none."""
        return self._locks.held, self._locks.max_size

    async def close(self) -> None:
        await self._shared.close()
        await self._locks.close()
        with swallowed(log, "audit store close", *_UNAVAILABLE):
            await self._pool.close()


async def _no_reset_query(conn: Any) -> None:
    """The pool's reset when a connection goes back: no query. asyncpg's default
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) costs a round trip
    per release, several per change (issue 11), and there is nothing for it to undo:
    asyncpg still rolls back a transaction left open (``Connection._reset``, before this);
    no connection LISTENs, keeps a cursor, takes an advisory lock (those are on the
    connections of :mod:`audit.pg_locks`) or sets session state (``SET LOCAL`` only)."""


async def _release(pool: Any, conn: Any) -> None:
    """Give a connection back; never raises (asyncpg terminates one whose reset fails;
    the pool's reset is :func:`_no_reset_query`). A terminated one is dropped."""
    with swallowed(log, "audit store connection release", *_UNAVAILABLE):
        await pool.release(conn)
