"""Customer locks on a few shared PostgreSQL sessions, their queries batched (issue 11).

A customer's write lock was a session advisory lock held on a connection of its own for
the whole change (:class:`audit.pg_locks.LockConnections`): one PostgreSQL backend per
change in flight, and a change waited for a free connection once ``lock_connections``
were lent out (the bench's 32 concurrent changes against the default 24: the gateway sat
waiting with its core 30 % idle). A session can hold any number of advisory locks, so
here each process has :data:`SESSIONS` lock sessions, shared:

- A key always goes to the same session (key modulo the number of sessions), so its lock
  and its unlock are on the session that holds it. This process never asks twice at once
  for one key: :class:`audit.locks.SubjectLocks` serialises a customer in the process
  first, and :class:`SharedLocks` sends a key it already holds the other way (below), so
  the session's re-entrant counting of advisory locks never lets two holders in.
- The lock is ``pg_try_advisory_lock``: it never blocks, so one session serves every
  change. When it answers false another session (another replica, or a job) holds the
  key: the caller then waits the existing way, ``pg_advisory_lock`` on a dedicated
  connection (``LockConnections.subject``), within what is left of its bound - the
  server's queue of waiters keeps the order and the blocking of before.
  ``lock_connections`` now bounds only those contended waits (and job locks).
- Batching, as a group commit: while a session's statement is in flight, the locks and
  unlocks asked for meanwhile queue up and go next as ONE statement over arrays
  (:data:`_BATCH`, a prepared statement: one round trip, one pass through the server's
  executor for any number of keys). The operations run in the order they were asked
  for (the rows of ``unnest``), so an unlock queued before a lock of the same key runs
  first. Each session sends its statements from a task of its own: a caller cancelled
  or out of time never cancels a statement shared with others. A lock given up before
  it was sent is not sent; one given up while in flight and granted is released by the
  session's next statement.
- An unlock is queued and not waited for (:meth:`SharedLocks.release`): the change's
  answer goes without the unlock's round trip (issue 11). The order of the queue keeps
  a customer serialised: this process's next lock of the key runs after the unlock, and
  another process's lock finds the key held until then and waits the blocking way. The
  unlock's answer is still handled: a statement that failed replaced the session as
  below (nothing stays held), and an unlock the server says was not held is logged.
- A session whose state is not known - its statement failed, timed out or was
  cancelled, or the server ended it (``pg_terminate_backend``, a restart: asyncpg's
  termination listener) - is terminated and a new one opened on the next request; its
  generation moves on. The locks it held died with it on the server, as with a
  dedicated connection that dies: the changes holding them are no longer serialised
  across replicas. Their :class:`Lease` says so (``lost``), and
  :meth:`audit.locks.SubjectLocks.check` - called by ``AuditLog.begin`` before the
  intent is written - refuses with ``AuditUnavailable`` (503), so a change whose lock
  was lost before its intent forwards nothing. A loss during the forward itself cannot
  be undone (nor could it before). Their unlock is then not sent (a new session does
  not hold their keys) and never raises; the locks asked for in the failed statement
  fail with ``AuditUnavailable``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import asyncpg

from audit.errors import AuditUnavailable, LockTimeout, LockWait
from audit.failures import swallowed
from audit.pg_locks import UNAVAILABLE

log = logging.getLogger(__name__)

#: lock sessions per process (the statements of two can be in flight at once)
SESSIONS = 2
#: a batch statement answering later than this leaves its session's state unknown
QUERY_SECONDS = 5.0
_CONNECT_SECONDS = 10.0
# One statement for a batch: each row a lock (true) or an unlock (false) of one key, run
# in the arrays' order; the answer per row is whether it was granted (released).
_BATCH = (
    "SELECT CASE WHEN t.take THEN pg_try_advisory_lock(t.k) ELSE pg_advisory_unlock(t.k) END"
    " FROM unnest($1::bigint[], $2::bool[]) AS t(k, take)"
)

# (key, a lock (else an unlock), its answer, the session generation it was asked in)
_Op = tuple[int, bool, "asyncio.Future[bool]", int]


class _Session:
    """One shared lock session: a connection opened when needed, and the queue of lock
    and unlock operations sent as one statement per round trip."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self.generation = 0  # moves on when the session (and every lock it held) is lost
        self.statements = 0  # batch statements sent (tests, bench)
        self._queue: list[_Op] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, key: int, take: bool) -> asyncio.Future[bool]:
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((key, take, future, self.generation))
        if self._task is None:
            self._task = asyncio.create_task(self._send_all())
        return future

    async def _send_all(self) -> None:
        try:
            while self._queue:
                conn = await self._connection()
                batch, self._queue = self._queue, []
                batch = self._to_send(batch)
                if conn is None:
                    self._fail(batch, "the audit store failed (no lock session)")
                elif batch:
                    await self._send(conn, batch)
        finally:
            self._task = None
            if self._queue:  # left by a cancel (close): nobody will send them
                self._fail(self._queue, "the audit log is closed")
                self._queue = []

    async def _connection(self) -> Any:
        """The session's connection, a new one if it has none (None if it cannot)."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        if conn is not None:  # closed, its termination not heard of yet
            self._lose()
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=_CONNECT_SECONDS, command_timeout=None
            )
        except UNAVAILABLE as exc:
            log.warning("audit lock session cannot connect (%s)", type(exc).__name__)
            return None
        if self._closed:
            _terminate(conn)
            return None
        conn.add_termination_listener(self._ended)
        self._conn = conn
        return conn

    def _to_send(self, batch: list[_Op]) -> list[_Op]:
        """Not sent: a lock given up before it was sent; an unlock of a lock lost with
        its session (done at once: a new session does not hold it)."""
        sent = []
        for op in batch:
            _key, take, future, generation = op
            if take and future.done():
                continue
            if not take and generation != self.generation:
                if not future.done():
                    future.set_result(False)
                continue
            sent.append(op)
        return sent

    async def _send(self, conn: Any, batch: list[_Op]) -> None:
        try:
            self.statements += 1
            rows = await conn.fetch(
                _BATCH, [op[0] for op in batch], [op[1] for op in batch], timeout=QUERY_SECONDS
            )
        except BaseException as exc:
            self._lose()  # whether its locks were taken is not known: the session goes
            self._fail(batch, f"the audit store failed ({type(exc).__name__})")
            if not isinstance(exc, UNAVAILABLE):
                raise
            log.warning("audit lock session lost (%s)", type(exc).__name__)
            return
        for (key, take, future, _), row in zip(batch, rows, strict=True):
            if not future.done():
                future.set_result(bool(row[0]))
            elif take and row[0]:  # given up while in flight, and granted: release it
                self._queue.append(
                    (key, False, asyncio.get_running_loop().create_future(), self.generation)
                )

    def _ended(self, conn: Any) -> None:
        """asyncpg's termination listener: the server (or we) ended the connection."""
        if conn is self._conn:
            self._conn = None
            self.generation += 1

    def _lose(self) -> None:
        conn, self._conn = self._conn, None
        self.generation += 1
        if conn is not None:
            _terminate(conn)

    @staticmethod
    def _fail(ops: list[_Op], message: str) -> None:
        """Locks asked for fail (AuditUnavailable); unlocks are done (the locks are gone
        with the session) and never raise."""
        for _key, take, future, _ in ops:
            if not future.done():
                if take:
                    future.set_exception(AuditUnavailable(message))
                else:
                    future.set_result(False)

    async def settled(self) -> None:
        """Until the queue is sent and answered (a failure is the sender's to handle)."""
        while (task := self._task) is not None:
            await asyncio.wait([task])

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()  # its operations fail: the log is closed
            await asyncio.wait([self._task])
        conn, self._conn = self._conn, None
        if conn is not None:
            with swallowed(log, "audit lock session close", *UNAVAILABLE):
                await conn.close(timeout=_CONNECT_SECONDS)


class Lease:
    """A customer lock held on a shared session; ``lost`` once that session ended (the
    server dropped the lock with it)."""

    __slots__ = ("_generation", "key", "session")

    def __init__(self, session: _Session, key: int) -> None:
        self.session, self._generation, self.key = session, session.generation, key

    @property
    def lost(self) -> bool:
        return self.session.generation != self._generation


class SharedLocks:
    """The lock sessions of one process (see the module's docstring)."""

    def __init__(self, dsn: str, sessions: int = SESSIONS) -> None:
        self._sessions = [_Session(dsn) for _ in range(sessions)]
        self._held: set[int] = set()  # keys held through a lease now

    @property
    def statements(self) -> int:
        """Batch statements sent so far, all sessions together."""
        return sum(s.statements for s in self._sessions)

    async def take(self, key: int, seconds: float) -> Lease | None:
        """The lock ``key`` if no other session holds it (else None, at once); the wait
        for the answer is bounded by ``seconds`` (then LockTimeout). A key this process
        already holds is None too: the caller's blocking wait then queues for it."""
        if key in self._held:
            return None
        session = self._sessions[key % len(self._sessions)]
        future = session.submit(key, True)
        try:
            async with asyncio.timeout(seconds):
                granted = await future
        except BaseException as exc:
            if _granted(future):  # as the wait ended: nobody holds it, so it is released
                with swallowed(log, "audit lock release", AuditUnavailable):
                    session.submit(key, False)  # (sent with the session's next statement)
            if isinstance(exc, TimeoutError):
                raise LockTimeout(LockWait.SUBJECT, seconds) from None
            raise
        if not granted:
            return None
        self._held.add(key)
        return Lease(session, key)

    def release(self, lease: Lease) -> None:
        """Unlock on the session that holds it, sent with that session's next statement:
        the caller does not wait for it (its answer need not, issue 11). Never raises; not
        sent when the session was lost (nothing to release). The session runs its
        operations in the order asked for, so a lock of the same key asked for after this
        (the next change of the customer in this process) runs after the unlock; another
        process's lock waits the blocking way until it has run. Its result is still
        handled (:func:`_unlocked`): a statement that failed replaced the session (its
        generation moved, the server dropped every lock it held, as before)."""
        self._held.discard(lease.key)
        if lease.lost:
            return
        try:
            unlocked = lease.session.submit(lease.key, False)
        except AuditUnavailable:  # closed: the lock goes with the session's connection
            return
        unlocked.add_done_callback(functools.partial(_unlocked, lease))

    async def settled(self) -> None:
        """Until every lock and unlock asked for so far has been answered."""
        for session in self._sessions:
            await session.settled()

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()


def _unlocked(lease: Lease, future: asyncio.Future[bool]) -> None:
    """The answer to a lease's unlock. False while its session lives on: the server
    held no such lock (a bug of the bookkeeping: said, not hidden). A failed statement
    answers False too, after it replaced the session (``lease.lost``): nothing is held."""
    if not future.cancelled() and future.result() is False and not lease.lost:
        log.warning("audit lock release: the lock session did not hold the lock")


def _granted(future: asyncio.Future[bool]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None and (
        future.result()
    )


def _terminate(conn: Any) -> None:
    with swallowed(log, "audit lock session terminate"):
        conn.terminate()
