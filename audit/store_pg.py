"""The PostgreSQL backend (asyncpg). The chain append is serialised on the head row
(``SELECT … FOR UPDATE``) so any number of replicas on one database keep one chain;
writes to one customer are serialised with a session advisory lock.

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
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg

from audit.backend import HEAD_SQL, INSERT_ENTRY, ChainStep, Row, Statement, StepRun
from audit.errors import AuditError, AuditUnavailable, LockTimeout, LockWait, ValueRefused
from audit.failures import swallowed

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
_UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
_UNLOCK_SECONDS = 5.0

T = TypeVar("T")


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
    def __init__(self, pool: Any, conn: Any, tr: Any, head: Row) -> None:
        self._pool, self._conn, self._tr = pool, conn, tr
        self.head = head
        self._done = False

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _store_errors():
            return [tuple(r) for r in await self._conn.fetch(numbered(sql), *params)]

    async def commit(self, statements: Sequence[Statement]) -> None:
        try:
            with _store_errors():
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
            with swallowed(log, "audit store rollback", *_UNAVAILABLE):
                await self._tr.rollback()

    async def _release(self) -> None:
        if not self._done:
            self._done = True
            await _release(self._pool, self._conn)


class PgBackend:
    kind = "postgresql"

    def __init__(self, pool: Any, lock_pool: Any, max_locks: int) -> None:
        self._pool = pool
        # Advisory locks are held for a whole request, each on its own connection. They
        # come from a pool of their own: holders of every lock connection must still be
        # able to append (through ``_pool``), or a burst of requests would deadlock.
        self._lock_pool = lock_pool
        self._max_locks = max_locks
        self._locks_held = 0

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 6, max_locks: int = 24) -> PgBackend:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, command_timeout=30, timeout=10,
            reset=_no_reset_query,
        )
        try:
            lock_pool = await asyncpg.create_pool(
                dsn, min_size=0, max_size=max_locks, command_timeout=None, timeout=10,
                reset=_no_reset_query,
            )
        except BaseException:
            await pool.close()
            raise
        return cls(pool, lock_pool, max_locks)

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
                tr = conn.transaction()
                await tr.start()
                if not durable:  # this transaction's commit does not wait for the WAL flush
                    await conn.execute("SET LOCAL synchronous_commit TO off")
                head = await conn.fetchrow(HEAD_SQL + " FOR UPDATE")
            if head is None:
                raise AuditUnavailable("the audit_head row is missing")
        except BaseException:
            await _release(self._pool, conn)
            raise
        return _Tx(self._pool, conn, tr, tuple(head))

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
        tx = await self.chain_tx(durable=durable)
        if (int(tx.head[0]), tx.head[1]) != expected:
            await tx.rollback()
            return False
        await tx.commit(statements)
        return True

    def subject_lock(self, key: int, timeout: float) -> AbstractAsyncContextManager[None]:
        return self._advisory(key, timeout)

    @asynccontextmanager
    async def job_lock(self, key: int) -> AsyncIterator[bool]:
        """``pg_try_advisory_lock`` on a connection of the lock pool, held for the job;
        yields False at once when another session holds it."""
        with _store_errors():
            conn = await self._lock_pool.acquire(timeout=10)
        try:
            try:
                with _store_errors():
                    held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            except BaseException:
                _terminate(conn)  # whether the lock was taken is not known
                raise
            try:
                yield held
            finally:
                if held:
                    await _unlock(conn, key)
        finally:
            await _release(self._lock_pool, conn)

    def lock_use(self) -> tuple[int, int]:
        """(lock connections held by writes now, the most there can be)."""
        return self._locks_held, self._max_locks

    @asynccontextmanager
    async def _advisory(self, key: int, seconds: float) -> AsyncIterator[None]:
        """The customer's session advisory lock, on a connection of the lock pool; the
        two waits together are bounded by ``seconds`` (then LockTimeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        conn = await _bounded(
            self._lock_pool.acquire(timeout=seconds), LockWait.CONNECTION, seconds
        )
        self._locks_held += 1
        try:
            left = max(0.001, deadline - loop.time())
            try:
                await _bounded(
                    conn.execute("SELECT pg_advisory_lock($1)", key, timeout=left),
                    LockWait.SUBJECT,
                    seconds,
                )
            except BaseException:
                # given up or cancelled: the server may still have granted the lock
                # (a race with the cancel), so the session cannot go back to the pool
                _terminate(conn)
                raise
            try:
                yield
            finally:
                await _unlock(conn, key)
        finally:
            self._locks_held -= 1
            await _release(self._lock_pool, conn)

    async def close(self) -> None:
        with swallowed(log, "audit store close (lock pool)", *_UNAVAILABLE):
            await self._lock_pool.close()
        with swallowed(log, "audit store close", *_UNAVAILABLE):
            await self._pool.close()


async def _bounded(wait: Awaitable[T], what: LockWait, seconds: float) -> T:
    """Await a lock wait that carries its own timeout: TimeoutError becomes LockTimeout,
    any other store failure AuditUnavailable."""
    try:
        return await wait
    except TimeoutError:
        raise LockTimeout(what, seconds) from None
    except _UNAVAILABLE as exc:
        raise AuditUnavailable(f"the audit store failed ({type(exc).__name__})") from exc


async def _unlock(conn: Any, key: int) -> None:
    """Release one advisory lock; a store failure here is not raised. A connection on
    which the unlock fails is terminated: it cannot go back to the pool holding the lock
    (the server drops a session's locks with the session)."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", key, timeout=_UNLOCK_SECONDS)
    except BaseException as exc:
        _terminate(conn)
        if not isinstance(exc, _UNAVAILABLE):
            raise
        log.warning("audit advisory unlock failed (%s)", type(exc).__name__)


def _terminate(conn: Any) -> None:
    with swallowed(log, "audit lock connection terminate"):
        conn.terminate()


async def _no_reset_query(conn: Any) -> None:
    """Both pools' reset when a connection goes back: no query. asyncpg's default
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) costs a round trip
    per release, several per change (issue 11), and there is nothing for it to undo:
    asyncpg still rolls back a transaction left open (``Connection._reset``, before this);
    no connection LISTENs, keeps a cursor or sets session state (``SET LOCAL`` only);
    a lock connection only ever takes and releases one advisory lock, and one whose lock
    state is not known clean is terminated instead of released (a failed or cancelled
    lock or unlock: ``_advisory``, ``job_lock``, ``_unlock``), so none goes back holding
    a lock."""


async def _release(pool: Any, conn: Any) -> None:
    """Give a connection back; never raises (asyncpg terminates one whose reset fails;
    the pools' reset is :func:`_no_reset_query`). A terminated one is dropped."""
    with swallowed(log, "audit store connection release", *_UNAVAILABLE):
        await pool.release(conn)
