"""Per-customer write locks: one write to a customer at a time, with a bounded wait.

In this process an ``asyncio.Lock`` per customer; across processes on PostgreSQL also a
session advisory lock (``Backend.subject_lock``), held for the whole write on one of a
few shared lock sessions (:mod:`audit.pg_lock_sessions`), or on a dedicated connection
while another replica holds it (:mod:`audit.pg_locks`). Waiting longer than
``wait_seconds`` for the two together raises :class:`LockTimeout` (an
``AuditUnavailable``: the caller forwards nothing and answers 503 with ``Retry-After``),
so a write behind a hung one, or behind a lock pool every connection of which is held,
gives up instead of queueing without end.

A lock across processes dies with the session holding it (a server restart, a
terminated backend, a lock session whose state became unknown). The holder's lease is
kept for its task (a context variable) and :meth:`SubjectLocks.check`, called before
the intent is written (``AuditLog.begin``), refuses a change whose lock was lost: it
forwards nothing, instead of forwarding unserialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType

from audit.backend import Backend, LockLease
from audit.errors import AuditUnavailable, LockTimeout, LockWait
from audit.failures import swallowed

log = logging.getLogger(__name__)

Subject = tuple[str, str]

# The lock across processes this task holds now, and whose it is.
_holding: contextvars.ContextVar[tuple[Subject, LockLease] | None] = contextvars.ContextVar(
    "audit_subject_lock", default=None
)


def lock_key(system: str, customer_id: str) -> int:
    """A signed 64-bit advisory-lock key for one data subject."""
    digest = hashlib.sha256(f"{system}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


#: a customer's entry in :attr:`SubjectLocks._locks`: held, and who waits for it next
#: (an empty tuple while no one does: no queue made for an uncontended hold)
Waiters = deque[asyncio.Future[None]] | tuple[()]


class SubjectLocks:
    """This process's lock per customer, and the lock across processes after it.

    The process's lock is a table, not an ``asyncio.Lock`` per customer: a customer in
    it is held, and its entry lists the holds waiting for it, first come first served;
    a release hands the lock to the first of them. A hold of a free customer takes it
    without awaiting anything, making neither a lock nor a queue (issue 11: nearly
    every change is one)."""

    def __init__(
        self,
        backend: Backend,
        *,
        wait_seconds: float,
        on_timeout: Callable[[LockWait], None] | None = None,
    ) -> None:
        self._backend = backend
        self._wait = wait_seconds
        self._on_timeout = on_timeout
        self._locks: dict[Subject, Waiters] = {}

    def hold(self, system: str, customer_id: str) -> _Hold:
        """Hold the customer's write lock for an ``async with`` block (see the module's
        docstring). A class, not an ``asynccontextmanager``: no async generator (whose
        creation and end asyncio tracks in a ``WeakSet``) per change (issue 11)."""
        return _Hold(self, (system, customer_id))

    @staticmethod
    def check(system: str, customer_id: str) -> None:
        """AuditUnavailable if this task holds the customer's lock and its session
        ended (the lock with it); nothing else costs more than a look-up."""
        held = _holding.get()
        if held is not None and held[0] == (system, customer_id) and held[1].lost:
            raise AuditUnavailable("the customer's lock was lost with its store session")

    async def _wait_turn(self, subject: Subject, waiters: Waiters) -> None:
        """Wait, within the bound, until the holder of ``subject`` hands it over."""
        if not waiters:  # the first to wait: the entry gets its queue
            self._locks[subject] = waiters = deque()
        assert isinstance(waiters, deque)
        turn = asyncio.get_running_loop().create_future()
        waiters.append(turn)
        try:
            async with asyncio.timeout(self._wait):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._release(subject)  # handed over as this wait ended: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):  # a release skipped it already
                    waiters.remove(turn)
            if isinstance(exc, TimeoutError):
                raise self._gave_up(LockWait.SUBJECT) from None
            raise

    def _release(self, subject: Subject) -> None:
        """Hand the customer's lock to the first hold still waiting, else free it."""
        waiters = self._locks[subject]
        while waiters:
            assert isinstance(waiters, deque)  # not empty: a queue
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        del self._locks[subject]

    def _gave_up(self, wait: LockWait) -> LockTimeout:
        if self._on_timeout is not None:
            with swallowed(log, "audit on_lock_timeout hook"):
                self._on_timeout(wait)
        return LockTimeout(wait, self._wait)


class _Hold(contextlib.AbstractAsyncContextManager[None]):
    """One hold of a customer's lock (:meth:`SubjectLocks.hold`): this process's lock,
    then the lock across processes (``Backend.subject_lock``), each released in turn
    on leaving, whatever the block raised."""

    __slots__ = ("_across", "_locks", "_subject", "_token")

    def __init__(self, locks: SubjectLocks, subject: Subject) -> None:
        self._locks, self._subject = locks, subject

    async def __aenter__(self) -> None:
        locks, subject = self._locks, self._subject
        table = locks._locks
        waiters = table.get(subject)
        if waiters is None:  # free: taken at once, the whole wait left for the other
            table[subject] = ()
            left = locks._wait
        else:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + locks._wait
            await locks._wait_turn(subject, waiters)
            left = max(0.001, deadline - loop.time())
        try:
            across = locks._backend.subject_lock(lock_key(*subject), left)
            try:
                lease = await across.__aenter__()
            except LockTimeout as exc:
                raise locks._gave_up(exc.wait) from None
        except BaseException:
            locks._release(subject)
            raise
        self._across = across
        self._token = _holding.set((subject, lease) if lease is not None else None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            _holding.reset(self._token)
            suppressed = await self._across.__aexit__(exc_type, exc, tb)
        finally:
            self._locks._release(self._subject)
        return exc_type is not None and bool(suppressed)
