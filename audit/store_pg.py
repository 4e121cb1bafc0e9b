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
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from functools import lru_cache
from types import TracebackType
from typing import Any

import asyncpg

from audit.backend import (
    HEAD_SQL,
    INSERT_ENTRY,
    INSERT_ENTRY_COLUMNS,
    ChainStep,
    Row,
    Statement,
    StepRun,
)
from audit.errors import AuditError, AuditUnavailable, ValueRefused
from audit.failures import swallowed
from audit.pg_lock_sessions import Lease, SharedLocks
from audit.pg_locks import UNAVAILABLE, HeldLock, LockConnections
from audit.pg_write import one_statement, unnest_insert

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\?")
# A batch of entries as one statement over arrays: far fewer round trips than executemany.
_BULK_ENTRY = {sql: unnest_insert(sql) for sql in (INSERT_ENTRY, INSERT_ENTRY_COLUMNS)}
# What the server says about a value (class 22 data exception, class 54 program limit
# exceeded: an index row over 2,704 bytes), and a text the driver cannot encode.
_REFUSED = (asyncpg.DataError, asyncpg.ProgramLimitExceededError, UnicodeEncodeError)
# Everything else a store can throw at us; a bug of ours (TypeError, …) is not among them.
_UNAVAILABLE = UNAVAILABLE
_BEGIN = "BEGIN"
_BEGIN_NOT_DURABLE = "BEGIN; SET LOCAL synchronous_commit TO off"


def _store_errors() -> _StoreErrors:
    """Driver and socket errors as audit errors; the message names the kind, no values."""
    return _STORE_ERRORS


class _StoreErrors(AbstractContextManager[None]):
    """:func:`_store_errors`: one stateless object for every statement, not a
    ``contextmanager`` generator per statement (issue 11)."""

    __slots__ = ()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None or issubclass(exc_type, AuditError):
            return
        if issubclass(exc_type, _REFUSED):
            raise ValueRefused(
                f"the audit store refuses a value of this entry ({exc_type.__name__})"
            ) from exc
        if issubclass(exc_type, _UNAVAILABLE):
            raise AuditUnavailable(f"the audit store failed ({exc_type.__name__})") from exc


_STORE_ERRORS = _StoreErrors()


async def _run(conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    bulk = _BULK_ENTRY.get(sql)
    if bulk is not None and len(rows) > 1:
        await conn.execute(bulk, *(list(column) for column in zip(*rows, strict=True)))
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

    def __init__(self, kept: _Kept, conn: Any, head: Row) -> None:
        self._kept, self._conn = kept, conn
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
            try:
                await self._safe_rollback()
            finally:
                await self._release()
            raise
        await self._release(clean=True)

    async def rollback(self) -> None:
        try:
            await self._safe_rollback()
        finally:
            await self._release()

    async def _safe_rollback(self) -> None:
        if not self._done:
            with swallowed(log, "audit store rollback", *_UNAVAILABLE):
                await self._conn.execute("ROLLBACK")

    async def _release(self, *, clean: bool = False) -> None:
        if not self._done:
            self._done = True
            await self._kept.give(self._conn, clean=clean)


#: pool connections the chain's transactions keep between batches, at most: the writer
#: has up to ``audit.commit.DEPTH`` (2) batches in flight, or one full-way transaction.
#: Never the whole pool: one connection at least stays for the reads.
KEPT = 2


class _Kept:
    """The chain's transactions take a pool connection per batch; one that committed
    cleanly is kept here for the next batch instead of going back to the pool (asyncpg's
    release costs a task, a timeout and its reset coroutine per batch: issue 11). Any
    other end (a failure, a rollback, a connection closed or still in a transaction)
    goes back to the pool as before, which rolls back or terminates it."""

    __slots__ = ("_closed", "_idle", "_most", "_pool")

    def __init__(self, pool: Any, most: int) -> None:
        self._pool, self._most = pool, most
        self._idle: list[Any] = []
        self._closed = False

    async def take(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            if _usable(conn):
                return conn
            # ended while kept: asyncpg's pool has taken it back already
        return await self._pool.acquire()

    async def give(self, conn: Any, *, clean: bool) -> None:
        if clean and not self._closed and len(self._idle) < self._most and _usable(conn):
            self._idle.append(conn)
            return
        await _release(self._pool, conn)

    async def close(self) -> None:
        """Back to the pool (before it closes: it waits for every connection lent out)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _release(self._pool, conn)


class PgBackend:
    kind = "postgresql"
    sends_query_columns = True  # migration 0006: no trigger parses the body on insert
    dsn: str | None = None  # where verify's helper processes connect (audit.verify)

    def __init__(self, pool: Any, locks: LockConnections, shared: SharedLocks) -> None:
        self._pool = pool
        # the chain transactions' connections between batches
        self._kept = _Kept(pool, min(KEPT, pool.get_max_size() - 1) if pool is not None else 0)
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
        backend = cls(pool, LockConnections(dsn, max_locks), SharedLocks(dsn))
        backend.dsn = dsn
        return backend

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
            conn = await self._kept.take()
        try:
            with _store_errors():
                # one round trip; not durable: its commit does not wait for the WAL flush
                await conn.execute(_BEGIN if durable else _BEGIN_NOT_DURABLE)
                head = await conn.fetchrow(HEAD_SQL + " FOR UPDATE")
            if head is None:
                raise AuditUnavailable("the audit_head row is missing")
        except BaseException:
            await self._kept.give(conn, clean=False)
            raise
        return _Tx(self._kept, conn, tuple(head))

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
                conn = await self._kept.take()
                try:
                    written = bool(await conn.fetchval(one[0], *one[1]))
                except BaseException:
                    await self._kept.give(conn, clean=False)
                    raise
                await self._kept.give(conn, clean=True)
                return written
        tx = await self.chain_tx(durable=durable)
        if (int(tx.head[0]), tx.head[1]) != expected:
            await tx.rollback()
            return False
        await tx.commit(statements)
        return True

    def subject_lock(self, key: int, timeout: float) -> _SubjectLock:
        return _SubjectLock(self._shared, self._locks, key, timeout)

    def job_lock(self, key: int) -> AbstractAsyncContextManager[bool]:
        return self._locks.job(key)

    def lock_use(self) -> tuple[int, int]:
        """(dedicated lock connections held by contended writes now, the most there can
        be); a write whose lock no other session held takes none."""
        return self._locks.held, self._locks.max_size

    async def close(self) -> None:
        await self._shared.close()
        await self._locks.close()
        await self._kept.close()
        with swallowed(log, "audit store close", *_UNAVAILABLE):
            await self._pool.close()


class _SubjectLock(AbstractAsyncContextManager["Lease | HeldLock"]):
    """A customer's lock: on a shared session when no other session holds it, else the
    blocking wait on a dedicated connection, within what is left of ``seconds``. A class,
    not an ``asynccontextmanager``: no async generator per change (issue 11)."""

    __slots__ = ("_dedicated", "_key", "_lease", "_locks", "_seconds", "_shared")

    def __init__(self, shared: SharedLocks, locks: LockConnections, key: int, seconds: float):
        self._shared, self._locks, self._key, self._seconds = shared, locks, key, seconds
        self._lease: Lease | None = None
        self._dedicated: AbstractAsyncContextManager[HeldLock] | None = None

    async def __aenter__(self) -> Lease | HeldLock:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._seconds
        lease = await self._shared.take(self._key, self._seconds)
        if lease is not None:
            self._lease = lease
            return lease
        dedicated = self._locks.subject(self._key, max(0.001, deadline - loop.time()))
        held = await dedicated.__aenter__()
        self._dedicated = dedicated
        return held

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._dedicated is not None:
            return await self._dedicated.__aexit__(exc_type, exc, tb)
        if self._lease is not None:
            self._shared.release(self._lease)  # sent, not waited for (audit.pg_lock_sessions)
        return None


def _usable(conn: Any) -> bool:
    """A pool connection still lent to us, open, and in no transaction. When the server
    ends a connection, asyncpg gives it back to its pool by itself and every method of
    the proxy we hold raises ``InterfaceError``."""
    try:
        return not conn.is_closed() and not conn.is_in_transaction()
    except asyncpg.InterfaceError:
        return False


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
