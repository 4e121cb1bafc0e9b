"""The transactions of the group-commit writer (:mod:`audit.writer`): how a batch is
committed, and how batches in flight are settled.

Two ways to commit a batch, writing the same rows:

* **sent** (:meth:`Committer.send`): every entry is sealed under the key this process
  holds for its subject (or seals nothing) and none is an erasure or a reconciler's
  close. The batch is chained on the head as it will be once the batches already sent
  have committed, and handed to the store in one go (``Backend.append_if_head``: one
  trip to SQLite's writer thread), which writes it only if the head row is that head.
  Up to ``DEPTH`` batches are in flight at once: the next is chained and sent while the
  store writes the previous one. :meth:`Committer.settle` takes the oldest: committed,
  its callers are answered; not (the head had moved, or the store failed), it and every
  later batch in flight go the full way, in order.
* **full** (:meth:`Committer.commit`): with nothing in flight, in one transaction under
  the append lock: read the head, forget the keys of subjects other processes erased
  since the head this process knew, look up or create keys, chain, commit.

One caller's entry cannot fail the others: when the store refuses a value
(:class:`ValueRefused`) the batch is split in halves until the refused entries are alone
(they fail; every other entry commits, in the order it was queued). Any other failure
(the store unreachable) fails the batch with AuditUnavailable; batches sent after it
are not failed for it, but go again the full way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from audit.backend import Backend, ChainStep, Query, Row, Statement
from audit.batch import (
    INSERT_CHECKPOINT,
    INSERT_KEY,
    UPDATE_HEAD,
    Chained,
    DataKey,
    Pending,
    Slot,
    Subject,
    chain,
    fail,
    is_current,
    resolve,
)
from audit.checkpoint import Checkpoints
from audit.entries import now_iso
from audit.errors import AuditError, AuditUnavailable, ValueRefused
from audit.failures import swallowed
from audit.keyring import ERASED_SINCE, KeyRing, subject_rows

log = logging.getLogger(__name__)

#: batches sent and not yet settled, at most
DEPTH = 2
#: after another process was seen appending, batches take the full path this long
#: (chained on a head that keeps moving, a sent batch would mostly be refused)
SHARED_SECONDS = 1.0
#: (seq, hash, checkpoint seq, checkpoint time) of a head row
Head = tuple[int, str, int, str | None]


def head_of(row: Row) -> Head:
    seq, head_hash, cp_seq, cp_at = row
    return int(seq), str(head_hash), int(cp_seq), cp_at


@dataclass
class InFlight:
    """A batch sent to the store: what it will make the head, and the store's answer."""

    batch: list[Pending]
    chained: Chained
    head: Head
    sent_at: float
    written: asyncio.Future[bool]


class Committer:
    def __init__(
        self,
        backend: Backend,
        keyring: KeyRing,
        checkpoints: Checkpoints,
        head: Row,
        on_batch: Callable[[int, float], None] | None,
    ) -> None:
        self._backend = backend
        self._keyring = keyring
        self._checkpoints = checkpoints
        self._on_batch = on_batch
        self._columns = backend.sends_query_columns
        # the head as this process last read or committed it; its seq is also how far it
        # has looked for erasures by other processes
        self._head = head_of(head)
        # the head once every batch in flight has committed (== _head with none)
        self._sent = self._head
        self.in_flight: deque[InFlight] = deque()
        self.dirty = False  # appended since this process's last checkpoint
        self._others_seen = -SHARED_SECONDS  # when another process's append was last seen

    # ------------------------------------------------------------------ sent batches
    def ready(self, batch: list[Pending]) -> bool:
        """Can ``batch`` be sent: no other process seen appending lately, and every entry
        sealed under the key this process holds for its subject, nothing to look up or
        check in the store first?"""
        if time.monotonic() - self._others_seen < SHARED_SECONDS:
            return False
        cached = self._keyring.cached
        return all(
            not (item.exclusive_close or item.erase) and is_current(item, cached.get(item.slot))
            for item in batch
        )

    def send(self, batch: list[Pending]) -> None:
        """Chain a ready ``batch`` on the head after the batches in flight and send it."""
        self._keyring.touch(batch)
        durable = any(item.durable for item in batch)
        seq, head_hash, cp_seq, cp_at = self._sent
        now = now_iso()
        chained = chain(
            batch, seq=seq, head_hash=head_hash, keys={}, cached=self._keyring.cached,
            still_open=set(), now=now, query_columns=self._columns,
        )  # fmt: skip
        head_statements, head = self._head_statements(chained, cp_seq, cp_at, now, durable)
        written = asyncio.ensure_future(
            self._backend.append_if_head(
                (seq, head_hash), [*chained.statements, *head_statements], durable=durable
            )
        )
        self.in_flight.append(InFlight(batch, chained, head, time.perf_counter(), written))
        self._sent = head

    async def settle(self) -> None:
        """Wait for the oldest batch in flight: answer its callers, or, when it was not
        written, take it and every later batch in flight the full way, in order."""
        oldest = self.in_flight.popleft()
        outcome = await _outcome(oldest.written)
        if outcome is True:
            self._committed(oldest)
            return
        rest = [(later, await _outcome(later.written)) for later in self.in_flight]
        self.in_flight.clear()
        self._sent = self._head
        if outcome is False or isinstance(outcome, ValueRefused):
            await self.commit(oldest.batch)  # the head had moved, or a value refused
        else:
            _report(outcome)
            fail(oldest.batch, _unavailable(outcome))
            self._report_batch(oldest)
        for later, written in rest:
            if written is True:  # only after a commit whose answer was lost
                self._committed(later)
            else:
                await self.commit(later.batch)
        self._sent = self._head  # nothing is in flight any more

    def _committed(self, flight: InFlight) -> None:
        self._head = flight.head
        self.dirty = True
        resolve(flight.batch, flight.chained.ids)
        self._report_batch(flight)

    def _report_batch(self, flight: InFlight) -> None:
        self.report(len(flight.batch), time.perf_counter() - flight.sent_at)

    def report(self, size: int, seconds: float) -> None:
        if self._on_batch is not None:
            with swallowed(log, "audit on_batch hook"):
                self._on_batch(size, seconds)

    # ------------------------------------------------------------------ the full way
    async def commit(self, batch: list[Pending]) -> None:
        """Commit ``batch`` with nothing in flight; when the store refuses a value, halve
        until the refused entries are alone (they fail, the rest commit in order).
        Answers every caller."""
        started = time.perf_counter()
        parts = [batch]
        while parts:
            part = parts.pop(0)
            try:
                await self._commit(part)
            except ValueRefused as exc:
                if len(part) == 1:
                    log.warning("audit store refused an entry: %s", exc)
                    fail(part, exc)
                else:
                    half = len(part) // 2
                    parts[:0] = [part[:half], part[half:]]
            except Exception as exc:
                _report(exc)
                fail([item for rest in (part, *parts) for item in rest], _unavailable(exc))
                break
        self.report(len(batch), time.perf_counter() - started)

    async def _commit(self, batch: list[Pending]) -> None:
        durable = any(item.durable for item in batch)
        if self.ready(batch):  # one trip, if the head is still this process's
            self.send(batch)
            flight = self.in_flight.popleft()
            written = await _outcome(flight.written)
            if written is True:
                self._head = self._sent = flight.head
                self.dirty = True
                resolve(batch, flight.chained.ids)
                return
            self._sent = self._head
            if isinstance(written, BaseException):
                raise written
        seen = _Seen()
        try:
            self._keyring.touch(batch)
            await self._backend.chain(self._step(batch, durable, seen), durable=durable)
        finally:
            if seen.moved is not None:  # other writers appended: drop keys they erased
                self._others_seen = time.monotonic()
                self._keyring.forget(seen.erased)
                self._head = self._sent = seen.moved
        if seen.chained is None or seen.head is None:  # pragma: no cover - chain() ran step
            raise AuditUnavailable("the audit store did not run the append")
        self._head = self._sent = seen.head
        self.dirty = True
        self._keyring.learn(seen.new_keys)
        self._keyring.forget(item.subject for item in batch if item.erase)
        resolve(batch, seen.chained.ids)

    def _step(self, batch: list[Pending], durable: bool, seen: _Seen) -> ChainStep:
        """The full way's transaction as one step (:data:`audit.backend.ChainStep`):
        the erasures of other writers since the head this process knew, the batch's
        missing keys (one lookup), the exclusive closes still open, then chain. On
        SQLite it runs on the writer thread: it changes nothing of this object but
        ``seen``, which :meth:`_commit` applies."""
        known = self._head[0]

        def step(row: Row) -> Generator[Query, list[Row], list[Statement]]:
            seq, head_hash, cp_seq, cp_at = head_of(row)
            cached = self._keyring.cached
            if seq != known:
                seen.erased = set(subject_rows((yield ERASED_SINCE, [known])))
                seen.moved = (seq, head_hash, cp_seq, cp_at)
                if seen.erased:
                    cached = {s: k for s, k in cached.items() if (s[0], s[1]) not in seen.erased}
            keys, seen.new_keys, key_rows = yield from self._keyring.for_batch(batch, seen.erased)
            still_open = yield from _still_open(batch)
            now = now_iso()
            chained = chain(
                batch, seq=seq, head_hash=head_hash, keys=keys, cached=cached,
                still_open=still_open, now=now, query_columns=self._columns,
            )  # fmt: skip
            head_statements, seen.head = self._head_statements(
                chained, cp_seq, cp_at, now, durable
            )
            seen.chained = chained
            return [(INSERT_KEY, key_rows), *chained.statements, *head_statements]

        return step

    def _head_statements(
        self, chained: Chained, cp_seq: int, cp_at: str | None, now: str, durable: bool
    ) -> tuple[list[Statement], Head]:
        """The new head, after a signed checkpoint when one is due (never in a commit
        that is not durable: a signed head, once seen, must not be lost); and that head."""
        seq, head_hash = chained.seq, chained.head_hash
        statements: list[Statement] = []
        if durable and self._checkpoints.due(seq, cp_seq, cp_at):
            statements.append((INSERT_CHECKPOINT, [self._checkpoints.row(seq, head_hash, now)]))
            cp_seq, cp_at = seq, now
        statements.append((UPDATE_HEAD, [(seq, head_hash, cp_seq, cp_at)]))
        return statements, (seq, head_hash, cp_seq, cp_at)

    async def checkpoint_only(self) -> None:
        """Sign the head after an idle period or at close, if this process appended
        (with nothing in flight)."""
        if not self.dirty:
            return
        tx = await self._backend.chain_tx()
        try:
            seq, head_hash, cp_seq, _ = head_of(tx.head)
            if seq <= cp_seq:
                await tx.rollback()
                self.dirty = False
                return
            now = now_iso()
            await tx.commit(
                [
                    (INSERT_CHECKPOINT, [self._checkpoints.row(seq, head_hash, now)]),
                    (UPDATE_HEAD, [(seq, head_hash, seq, now)]),
                ]
            )
            if seq == self._head[0]:
                self._head = self._sent = (seq, head_hash, seq, now)
            self.dirty = False
        except BaseException:
            await tx.rollback()
            raise


async def _outcome(written: asyncio.Future[bool]) -> bool | BaseException:
    """What the store answered a sent batch: True (committed), False (the head had
    moved: nothing written), or the failure."""
    try:
        return await written
    except Exception as exc:
        return exc


def _unavailable(exc: BaseException) -> BaseException:
    """The error a failed batch's callers get: an audit error as it is, anything else
    (a bug) as AuditUnavailable."""
    if isinstance(exc, AuditError):
        return exc
    return AuditUnavailable("the audit store cannot take the entry")


def _report(exc: BaseException) -> None:
    if isinstance(exc, AuditUnavailable):
        log.error("audit store append failed: %s", exc)
    elif not isinstance(exc, AuditError):
        log.error("audit store append failed: %s", type(exc).__name__)


def _still_open(batch: list[Pending]) -> Generator[Query, list[Row], set[str]]:
    """Of the intents the batch closes exclusively (reconciliation), those still open."""
    exclusive = [i.closes_intent for i in batch if i.exclusive_close and i.closes_intent]
    if not exclusive:
        return set()
    marks = ",".join("?" * len(exclusive))
    rows = yield (
        f"SELECT audit_id FROM audit_open_intent WHERE audit_id IN ({marks})",  # noqa: S608 - only placeholders
        exclusive,
    )
    return {r[0] for r in rows}


@dataclass
class _Seen:
    """What a full-way step found and made, applied by the committer after it ran."""

    moved: Head | None = None  # the head, when other writers had moved it
    erased: set[Subject] = field(default_factory=set)
    new_keys: dict[Slot, DataKey] = field(default_factory=dict)
    chained: Chained | None = None
    head: Head | None = None  # the head once the batch is committed
