"""The group-commit writer: one task appends everything waiting onto the chain.

Callers prepare their entry (validated, sealed, encoded) in their own task and await a
future. The writer takes everything queued, and in one transaction under the database's
append lock assigns ``seq``, hashes, inserts, updates the head (and signs a checkpoint
when due), commits, and only then resolves each future: an awaited append is durable,
and a burst of requests costs one disk flush, not one each. How a batch is committed,
and why up to two are in flight at once, is :mod:`audit.commit`'s.

The writer does not wait for the store with work at hand: while a batch is being
written, the next one is chained and sent behind it (so the callers of one batch prepare
their next entries while the store writes the other). A large batch with nothing in
flight is sent in two halves for the same reason. An erasure, a reconciler's close, or
an entry whose subject key must be looked up waits until nothing is in flight.

Under load (the last batch held ``UNDER_LOAD`` entries or more) the writer waits for
company before it takes the next batch: until ``GATHER`` entries (at most as many as the
last batch held) are queued, or
``GATHER_SECONDS``, a flush or close - fewer, larger commits, each one sync (issue 11).
One change at a time never waits.

An entry appended with ``durable=False`` does not need a sync of its own: a batch made
only of such entries commits without waiting for the disk (docs/audit.md, "Durability
of an outcome"), and never carries a checkpoint. What the store is known not to hold is
refused in the caller's task (:func:`audit.entries.check_storable`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from audit.backend import Backend, Row
from audit.batch import Pending, fail, seal_into
from audit.chain import canonical
from audit.checkpoint import Checkpoints
from audit.commit import DEPTH, Committer
from audit.entries import check_storable
from audit.errors import AuditUnavailable, InvalidAuditInput
from audit.failures import swallowed
from audit.keyring import KeyRing
from audit.record import intent_text

log = logging.getLogger(__name__)

_MAX_BATCH = 4096
#: a batch this large, with nothing in flight, is sent in two halves
_SPLIT = 64
#: how long an entry that need not be durable waits for company while the writer is idle
LINGER = 0.005
#: under load - the last batch held at least this many entries - the writer waits for
#: company before it takes the next batch: until GATHER entries (at most the last
#: batch's size: the callers that can come back) are queued or
#: GATHER_SECONDS have passed (issue 11: fewer, larger commits; one at a time, no wait)
UNDER_LOAD = 4
GATHER = 32
GATHER_SECONDS = 0.004


class ChainWriter:
    """Owns the append side of one process: the queue, the key cache, the writer task.

    Nothing runs until :meth:`start` (or ``async with``); :meth:`close` commits what is
    queued, stops the task and signs the head."""

    def __init__(
        self,
        backend: Backend,
        *,
        master_key: bytes,
        checkpoints: Checkpoints,
        on_batch: Callable[[int, float], None] | None,
        head: Row,
    ) -> None:
        self._keyring = KeyRing(master_key)
        self._committer = Committer(backend, self._keyring, checkpoints, head, on_batch)
        self._idle_seconds = checkpoints.seconds
        self._queue = _Inbox()
        self._held: Pending | None = None
        self._taken: list[Pending] = []  # the batch being written (all answered after)
        self._last = 0  # entries in the last batch taken
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the writer task (in the running loop)."""
        if self._task is not None:
            raise RuntimeError("the audit writer is started already")
        self._task = asyncio.create_task(self._write_loop(), name="audit-writer")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Commit what is queued, stop, and sign the head if this process appended."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.exception()  # a defect that stopped it was logged then
        with swallowed(log, "audit checkpoint at close"):
            await self._committer.checkpoint_only()

    async def __aenter__(self) -> ChainWriter:
        self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ appending
    async def append(self, pending: Pending) -> str:
        """Prepare ``pending`` here, queue it, and return its id once it is committed."""
        return await self.enqueue(pending)

    def flush(self) -> None:
        """Wake the writer now for what is queued (an entry that need not be durable
        lingers otherwise: :class:`_Inbox`)."""
        self._queue.flush()

    def enqueue(self, pending: Pending) -> asyncio.Future[str]:
        """Prepare ``pending`` here (its errors raised here) and queue it; the future
        resolves to its id once it is committed."""
        task = self._task
        if task is None or task.done():
            raise AuditUnavailable("the audit log is closed")
        self._prepare(pending)
        pending.future = future = task.get_loop().create_future()
        self._queue.put_nowait(pending)
        return future

    def _prepare(self, pending: Pending) -> None:
        """Seal and encode in the caller's task, so that the append lock is held only to
        chain and insert. The writer redoes it if the key changed meanwhile (erasure).
        The outcome of an intent in flight comes encoded (:mod:`audit.record`): its
        members are the intent's, checked with it, and plain values of its own."""
        if pending.text is not None:
            return
        if pending.to_seal:
            cached = self._keyring.cached.get(pending.slot)
            if cached is not None:  # else the writer seals, once it has the key
                seal_into(pending, cached)
                pending.key_id = cached[0]
        try:  # always here: a value that cannot be encoded is this caller's error alone
            pending.text = (
                canonical(pending.body) if pending.intent is None else intent_text(pending.body)
            )
        except (TypeError, ValueError) as exc:
            raise InvalidAuditInput("a before/after value is not JSON-serialisable") from exc
        check_storable(pending.body, pending.text)

    # ------------------------------------------------------------------ the writer task
    async def _write_loop(self) -> None:
        """:meth:`_run`; if anything ends it early (a defect, a cancellation), every
        caller still waiting is answered ``AuditUnavailable`` - none waits forever - and
        new entries are refused (:attr:`alive`)."""
        try:
            await self._run()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.error("audit writer stopped (%s)", type(exc).__name__)
            self._fail_waiting(AuditUnavailable("the audit writer stopped"))
            raise

    def _fail_waiting(self, exc: AuditUnavailable) -> None:
        """Answer with ``exc`` every entry taken, sent, held or queued and not answered
        (one sent may have been committed: the reconciler closes such an intent)."""
        fail(self._taken, exc)
        for flight in self._committer.in_flight:
            fail(flight.batch, exc)
        self._committer.in_flight.clear()
        if self._held is not None:
            fail([self._held], exc)
            self._held = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                fail([item], exc)

    async def _run(self) -> None:
        committer = self._committer
        in_flight = committer.in_flight
        stop = False
        while not stop or in_flight:
            if in_flight and (stop or (self._held is None and self._queue.empty())):
                await committer.settle()  # nothing else to do meanwhile
                continue
            first = self._held
            self._held = None
            if first is None and not self._queue.empty():
                first = self._queue.get_nowait()  # no idle timer to arm: work is waiting
            elif first is None:
                try:
                    async with asyncio.timeout(self._idle_seconds):
                        first = await self._queue.get()
                except TimeoutError:
                    with swallowed(log, "audit idle checkpoint"):
                        await committer.checkpoint_only()
                    continue
            if first is None:
                stop = True
                continue
            # no more company than the last batch's: with N callers appending in turn,
            # at most N come back (waiting for GATHER would idle GATHER_SECONDS a batch)
            want = min(GATHER, self._last)
            if self._last >= UNDER_LOAD and not first.erase and len(self._queue) + 1 < want:
                self._held = first  # under load: wait for company (answered if it fails)
                await self._queue.gather(want - 1, GATHER_SECONDS)
                self._held = None
            self._taken, stop = self._take_batch(first)
            self._last = len(self._taken)
            await self._write(self._taken)
        self._fail_waiting(AuditUnavailable("the audit log is closed"))

    async def _write(self, batch: list[Pending]) -> None:
        """Send ``batch`` behind those in flight, or commit it once none is."""
        committer = self._committer
        while len(committer.in_flight) >= DEPTH:
            await committer.settle()
        if committer.ready(batch):
            if not committer.in_flight and len(batch) >= _SPLIT:
                half = len(batch) // 2
                committer.send(batch[:half])
                batch = batch[half:]
            committer.send(batch)
            return
        while committer.in_flight:
            await committer.settle()
        await committer.commit(batch)

    def _take_batch(self, first: Pending) -> tuple[list[Pending], bool]:
        """``first`` and what is queued behind it: (the batch, whether close was asked)."""
        batch = [first]
        if first.erase:  # an erasure goes alone: keys change under it
            return batch, False
        while len(batch) < _MAX_BATCH and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return batch, True
            if item.erase:
                self._held = item
                break
            batch.append(item)
        return batch, False


class _Inbox:
    """The writer's queue: what ``asyncio.Queue`` does here (one producer side, one
    consumer task), with less work per entry - no task counting, no event cleared on
    every put, no putters to wake (it is unbounded).

    An entry that need not be durable (an ``applied`` outcome) queued alone does not
    wake a writer that waits idle: it lingers up to :data:`LINGER` seconds, so that the
    next entry (one change at a time: the next change's intent) takes it into the same
    commit instead of a commit of its own right after the answer, which would compete
    with the next request for the loop and the store's thread (issue 11). Any other
    entry - a second one too: with changes under way at once, a lingering outcome
    would split their intents' batch -, :meth:`flush` (a read of the log) or close
    wakes it at once."""

    __slots__ = ("_items", "_timer", "_waiter", "_want")

    def __init__(self) -> None:
        self._items: deque[Pending | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._want = 0  # while the writer gathers: how many entries wake it

    def put_nowait(self, item: Pending | None) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._want:  # gathering
            if item is None or len(self._items) >= self._want:
                waiter.set_result(None)
            return
        if item is None or item.durable or len(self._items) > 1:
            waiter.set_result(None)  # not alone: another change is under way
        else:
            self._timer = waiter.get_loop().call_later(LINGER, self.flush)

    def flush(self) -> None:
        """Wake a waiting writer now if anything is queued."""
        waiter = self._waiter
        if (self._items or self._want) and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def gather(self, want: int, seconds: float) -> None:
        """Wait until ``want`` entries are queued, ``seconds`` have passed, :meth:`flush`
        or close - whichever comes first."""
        if len(self._items) >= want:
            return
        loop = asyncio.get_running_loop()
        self._want = want
        self._waiter = waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(seconds, wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._want = 0

    def __len__(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def get_nowait(self) -> Pending | None:
        return self._items.popleft()  # IndexError when empty: only called when it is not

    async def get(self) -> Pending | None:
        """The next item, once there is one and the writer is woken (for one consumer)."""
        if not self._items:
            try:
                while True:
                    self._waiter = waiter = asyncio.get_running_loop().create_future()
                    try:
                        await waiter
                    finally:
                        self._waiter = None
                    if self._items:
                        break
            finally:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
        return self._items.popleft()
