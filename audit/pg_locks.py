"""PostgreSQL session advisory locks on connections of their own (:class:`LockConnections`).

A customer's write lock is held on a shared lock session (:mod:`audit.pg_lock_sessions`)
unless another session holds the key; then (``PgBackend.subject_lock``) the write waits
for it here, ``pg_advisory_lock`` on a connection of its own, kept until the unlock. A
job's lock (``job_lock``) is held here too, for the whole job. The connections come from
a small free-list of dedicated connections - not an asyncpg pool: its acquire and
release machinery (a ``wait_for`` task per bounded acquire, the proxy, the reset hook)
cost about as much CPU as the lock and unlock queries themselves (issue 11). The lock
and the unlock are one simple-protocol query each (the key is our own integer), with
asyncpg's own per-query timer as the bound.

The rules are the pool's: at most ``max_size`` connections, in use or free; waiting for
one, and then for the lock, is bounded together by the caller's seconds (then
:class:`LockTimeout`); a connection whose lock state is not known - the lock wait given
up, cancelled or failed, or the unlock failed - is terminated, never used again (the
server drops a session's advisory locks with the session), so none goes back to the
free-list holding a lock. A connection found closed is dropped and its place freed; one
unused for :data:`IDLE_SECONDS` is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from audit.errors import AuditUnavailable, LockTimeout, LockWait
from audit.failures import swallowed

log = logging.getLogger(__name__)

# What a store can throw at us; a bug of ours (TypeError, …) is not among them.
UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
_UNLOCK_SECONDS = 5.0
#: a lock connection left unused this long is closed (asyncpg's pool default)
IDLE_SECONDS = 300.0
_CONNECT_SECONDS = 10.0


class HeldLock:
    """A lock held on a dedicated connection; ``lost`` once that connection ended."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def lost(self) -> bool:
        return bool(self._conn.is_closed())


class LockConnections:
    """The lock connections of one process (see the module's docstring)."""

    def __init__(self, dsn: str, max_size: int) -> None:
        self._dsn = dsn
        self.max_size = max_size
        self.held = 0  # connections lent out for a subject lock now
        # (connection, when it came back), the most recent last: taken LIFO, so the
        # oldest idle ones are first and closed after IDLE_SECONDS (as asyncpg's pool)
        self._free: list[tuple[Any, float]] = []
        self._open = 0  # connections open or being opened, lent out or free
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @asynccontextmanager
    async def subject(self, key: int, seconds: float) -> AsyncIterator[HeldLock]:
        """Hold the advisory lock ``key``; the wait for a connection and for the lock
        together are bounded by ``seconds`` (then LockTimeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        conn = await self._take(seconds)
        self.held += 1
        try:
            try:
                await conn.execute(
                    f"SELECT pg_advisory_lock({int(key)})",
                    timeout=max(0.001, deadline - loop.time()),
                )
            except BaseException as exc:
                # given up, cancelled or failed: the server may still have granted the
                # lock (a race with the cancel), so the session cannot be used again
                _terminate(conn)
                if isinstance(exc, TimeoutError):
                    raise LockTimeout(LockWait.SUBJECT, seconds) from None
                if isinstance(exc, UNAVAILABLE):
                    raise _unavailable(exc) from exc
                raise
            try:
                yield HeldLock(conn)
            finally:
                await _unlock(conn, key)
        finally:
            self.held -= 1
            self._give(conn)

    @asynccontextmanager
    async def job(self, key: int) -> AsyncIterator[bool]:
        """``pg_try_advisory_lock`` on a lock connection, held for the job; yields False
        at once when another session holds it."""
        conn = await self._take(_CONNECT_SECONDS)
        try:
            try:
                held = bool(
                    await conn.fetchval(f"SELECT pg_try_advisory_lock({int(key)})")
                )
            except BaseException as exc:
                _terminate(conn)  # whether the lock was taken is not known
                if isinstance(exc, UNAVAILABLE):
                    raise _unavailable(exc) from exc
                raise
            try:
                yield held
            finally:
                if held:
                    await _unlock(conn, key)
        finally:
            self._give(conn)

    async def _take(self, seconds: float) -> Any:
        """A free connection, else a new one while fewer than ``max_size`` are open, else
        wait (at most ``seconds``: LockTimeout) for one to come back or be dropped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            while self._free:
                conn, _ = self._free.pop()
                if not conn.is_closed():
                    return conn
                self._open -= 1
            left = deadline - loop.time()
            if left <= 0:
                raise LockTimeout(LockWait.CONNECTION, seconds)
            if self._open < self.max_size:
                return await self._connect(left, seconds)
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(left):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken as the wait ended (a cancel, the bound): pass it on
                else:
                    waiter.cancel()
                    with swallowed(log, "audit lock waiter removal", ValueError):
                        if waiter in self._waiters:
                            self._waiters.remove(waiter)
                if isinstance(exc, TimeoutError):
                    raise LockTimeout(LockWait.CONNECTION, seconds) from None
                raise

    async def _connect(self, left: float, seconds: float) -> Any:
        self._open += 1
        try:
            return await asyncpg.connect(
                self._dsn, timeout=min(left, _CONNECT_SECONDS), command_timeout=None
            )
        except BaseException as exc:
            self._open -= 1
            self._wake()
            if isinstance(exc, TimeoutError):
                raise LockTimeout(LockWait.CONNECTION, seconds) from None
            if isinstance(exc, UNAVAILABLE):
                raise _unavailable(exc) from exc
            raise

    def _give(self, conn: Any) -> None:
        """Back to the free-list; a closed (terminated) one is dropped, its place freed."""
        if conn.is_closed():
            self._open -= 1
        elif self._closed:
            self._open -= 1
            _terminate(conn)
        else:
            now = asyncio.get_running_loop().time()
            self._free.append((conn, now))
            while now - self._free[0][1] > IDLE_SECONDS:
                self._open -= 1
                _terminate(self._free.pop(0)[0])  # idle for long: closed, no round trip
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the free connections; one lent out is closed when it comes back."""
        self._closed = True
        free, self._free = self._free, []
        for conn, _ in free:
            self._open -= 1
            with swallowed(log, "audit lock connection close", *UNAVAILABLE):
                await conn.close(timeout=_UNLOCK_SECONDS)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # each finds the list closed


def _unavailable(exc: BaseException) -> AuditUnavailable:
    return AuditUnavailable(f"the audit store failed ({type(exc).__name__})")


async def _unlock(conn: Any, key: int) -> None:
    """Release one advisory lock; a store failure here is not raised. A connection on
    which the unlock fails is terminated: it cannot go back holding the lock (the server
    drops a session's locks with the session)."""
    try:
        await conn.execute(f"SELECT pg_advisory_unlock({int(key)})", timeout=_UNLOCK_SECONDS)
    except BaseException as exc:
        _terminate(conn)
        if not isinstance(exc, UNAVAILABLE):
            raise
        log.warning("audit advisory unlock failed (%s)", type(exc).__name__)


def _terminate(conn: Any) -> None:
    with swallowed(log, "audit lock connection terminate"):
        conn.terminate()
