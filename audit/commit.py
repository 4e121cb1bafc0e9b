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
from collections.abc import Callable
from dataclasses import dataclass

from audit.backend import Backend, ChainTx, Row, Statement
from audit.batch import (
    INSERT_CHECKPOINT,
    INSERT_KEY,
    UPDATE_HEAD,
    Chained,
    Pending,
    chain,
    fail,
    is_current,
    resolve,
)
from audit.checkpoint import Checkpoints
from audit.entries import now_iso
from audit.errors import AuditError, AuditUnavailable, ValueRefused
from audit.failures import swallowed
from audit.keyring import KeyRing

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
    written: asyncio.Task[bool]


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
            still_open=set(), now=now,
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
        tx = await self._backend.chain_tx(durable=durable)
        try:
            chained = await self._write(tx, batch, durable)
        except BaseException:
            await tx.rollback()
            raise
        self._keyring.forget(item.subject for item in batch if item.erase)
        resolve(batch, chained.ids)

    async def _write(self, tx: ChainTx, batch: list[Pending], durable: bool) -> Chained:
        """Chain ``batch`` onto the head in ``tx`` and commit it."""
        seq, head_hash, cp_seq, cp_at = head_of(tx.head)
        if seq != self._head[0]:  # other writers appended: drop keys they erased
            self._others_seen = time.monotonic()
            await self._keyring.forget_erased_since(tx, self._head[0])
            self._head = self._sent = (seq, head_hash, cp_seq, cp_at)
        keys, new_keys, key_rows = await self._keyring.for_batch(tx, batch)
        now = now_iso()
        chained = chain(
            batch,
            seq=seq,
            head_hash=head_hash,
            keys=keys,
            cached=self._keyring.cached,
            still_open=await _still_open(tx, batch),
            now=now,
        )
        head_statements, head = self._head_statements(chained, cp_seq, cp_at, now, durable)
        await tx.commit([(INSERT_KEY, key_rows), *chained.statements, *head_statements])
        self._head = self._sent = head
        self.dirty = True
        self._keyring.learn(new_keys)
        return chained

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


async def _outcome(written: asyncio.Task[bool]) -> bool | BaseException:
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


async def _still_open(tx: ChainTx, batch: list[Pending]) -> set[str]:
    """Of the intents the batch closes exclusively (reconciliation), those still open."""
    exclusive = [i.closes_intent for i in batch if i.exclusive_close and i.closes_intent]
    if not exclusive:
        return set()
    marks = ",".join("?" * len(exclusive))
    rows = await tx.fetchall(
        f"SELECT audit_id FROM audit_open_intent WHERE audit_id IN ({marks})",  # noqa: S608 - only placeholders
        exclusive,
    )
    return {r[0] for r in rows}
