"""The group-commit writer: one task appends everything waiting onto the chain.

Callers prepare their entry (validated, sealed, encoded) in their own task and await a
future. The writer takes everything queued, and in one transaction under the database's
append lock assigns ``seq``, hashes, inserts, updates the head (and signs a checkpoint
when due), commits, and only then resolves each future: an awaited append is durable,
and a burst of requests costs one disk flush, not one each.

One caller's entry cannot fail the others. What the store is known not to hold is refused
in the caller's task (:func:`audit.entries.check_storable`); should the store still refuse
a value (:class:`ValueRefused`), the batch is split in halves until the refused entries
are alone: they fail, every other entry commits, in the order it was queued. Any other
failure (the store unreachable) fails the whole batch with AuditUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from audit.backend import Backend, ChainTx, Statement
from audit.batch import (
    INSERT_CHECKPOINT,
    INSERT_KEY,
    UPDATE_HEAD,
    Chained,
    DataKey,
    Pending,
    Slot,
    chain,
    seal_into,
)
from audit.chain import canonical
from audit.checkpoint import Checkpoints
from audit.entries import check_storable, now_iso
from audit.errors import AuditError, AuditUnavailable, InvalidAuditInput, ValueRefused
from audit.failures import swallowed
from audit.keyring import KeyRing

log = logging.getLogger(__name__)

_MAX_BATCH = 4096


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
        head_seq: int,
    ) -> None:
        self._backend = backend
        self._checkpoints = checkpoints
        self._on_batch = on_batch
        self._last_seq = head_seq
        self._dirty = False  # appended since this process's last checkpoint
        self._keyring = KeyRing(master_key)
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._held: Pending | None = None
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
        await self._task
        with swallowed(log, "audit checkpoint at close"):
            await self._checkpoint_only()

    async def __aenter__(self) -> ChainWriter:
        self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ appending
    async def append(self, pending: Pending) -> str:
        """Prepare ``pending`` here, queue it, and return its id once it is committed."""
        if not self.alive:
            raise AuditUnavailable("the audit log is closed")
        self._prepare(pending)
        pending.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(pending)
        return await pending.future

    def _prepare(self, pending: Pending) -> None:
        """Seal and encode in the caller's task, so that the append lock is held only to
        chain and insert. The writer redoes it if the key changed meanwhile (erasure)."""
        if pending.to_seal:
            cached = self._keyring.cached.get(pending.slot)
            if cached is not None:  # else the writer seals, once it has the key
                seal_into(pending, cached)
                pending.key_id = cached[0]
        try:  # always here: a value that cannot be encoded is this caller's error alone
            pending.text = canonical(pending.body)
        except (TypeError, ValueError) as exc:
            raise InvalidAuditInput("a before/after value is not JSON-serialisable") from exc
        check_storable(pending.body, pending.text)

    async def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = self._held
            self._held = None
            if first is None:
                try:
                    async with asyncio.timeout(self._checkpoints.seconds):
                        first = await self._queue.get()
                except TimeoutError:
                    with swallowed(log, "audit idle checkpoint"):
                        await self._checkpoint_only()
                    continue
            if first is None:
                break
            batch, stop = self._take_batch(first)
            started = time.perf_counter()
            await self._commit_isolating(batch)
            if self._on_batch is not None:
                with swallowed(log, "audit on_batch hook"):
                    self._on_batch(len(batch), time.perf_counter() - started)
        closed = AuditUnavailable("the audit log is closed")
        if self._held is not None:
            _fail([self._held], closed)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                _fail([item], closed)

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

    async def _commit_isolating(self, batch: list[Pending]) -> None:
        """Commit ``batch``; when the store refuses a value, halve until the refused
        entries are alone (they fail, the rest commit in order). Resolves every future."""
        parts = [batch]
        while parts:
            part = parts.pop(0)
            try:
                await self._commit(part)
            except ValueRefused as exc:
                if len(part) == 1:
                    log.warning("audit store refused an entry: %s", exc)
                    _fail(part, exc)
                else:
                    half = len(part) // 2
                    parts[:0] = [part[:half], part[half:]]
            except AuditError as exc:
                if isinstance(exc, AuditUnavailable):
                    log.error("audit store append failed: %s", exc)
                _fail([item for rest in (part, *parts) for item in rest], exc)
                return
            except Exception as exc:
                log.error("audit store append failed: %s", type(exc).__name__)
                unavailable = AuditUnavailable("the audit store cannot take the entry")
                _fail([item for rest in (part, *parts) for item in rest], unavailable)
                return

    # ------------------------------------------------------------------ one transaction
    async def _commit(self, batch: list[Pending]) -> None:
        """Append ``batch`` in one transaction under the append lock, then resolve it."""
        tx = await self._backend.chain_tx()
        try:
            chained, new_keys = await self._write(tx, batch)
        except BaseException:
            await tx.rollback()
            raise
        self._last_seq = chained.seq
        self._dirty = True
        self._keyring.learn(new_keys)
        self._keyring.forget(item.subject for item in batch if item.erase)
        _resolve(batch, chained.ids)

    async def _write(
        self, tx: ChainTx, batch: list[Pending]
    ) -> tuple[Chained, dict[Slot, DataKey]]:
        """Chain ``batch`` onto the head in ``tx`` and commit: (what was written, the data
        keys new to this process)."""
        seq, head_hash, cp_seq, cp_at = tx.head
        seq, cp_seq = int(seq), int(cp_seq)
        if seq != self._last_seq:  # other writers appended: drop keys they erased
            await self._keyring.forget_erased_since(tx, self._last_seq)
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
        statements = [(INSERT_KEY, key_rows), *chained.statements]
        statements += self._head_statements(chained, cp_seq, cp_at, now)
        await tx.commit(statements)
        return chained, new_keys

    def _head_statements(
        self, chained: Chained, cp_seq: int, cp_at: str | None, now: str
    ) -> list[Statement]:
        """The new head, after a signed checkpoint when one is due."""
        seq, head_hash = chained.seq, chained.head_hash
        statements: list[Statement] = []
        if self._checkpoints.due(seq, cp_seq, cp_at):
            statements.append((INSERT_CHECKPOINT, [self._checkpoints.row(seq, head_hash, now)]))
            cp_seq, cp_at = seq, now
        statements.append((UPDATE_HEAD, [(seq, head_hash, cp_seq, cp_at)]))
        return statements

    async def _checkpoint_only(self) -> None:
        """Sign the head after an idle period or at close, if this process appended."""
        if not self._dirty:
            return
        tx = await self._backend.chain_tx()
        try:
            seq, head_hash, cp_seq, _ = tx.head
            if int(seq) <= int(cp_seq):
                await tx.rollback()
                self._dirty = False
                return
            now = now_iso()
            await tx.commit(
                [
                    (INSERT_CHECKPOINT, [self._checkpoints.row(int(seq), head_hash, now)]),
                    (UPDATE_HEAD, [(int(seq), head_hash, int(seq), now)]),
                ]
            )
            self._dirty = False
        except BaseException:
            await tx.rollback()
            raise


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


def _resolve(batch: list[Pending], ids: list[str | None]) -> None:
    for item, audit_id in zip(batch, ids, strict=True):
        if item.future is not None and not item.future.done():
            if audit_id is None:
                item.future.set_exception(InvalidAuditInput("that intent is already closed"))
            else:
                item.future.set_result(audit_id)


def _fail(items: list[Pending], exc: BaseException) -> None:
    for item in items:
        if item.future is not None and not item.future.done():
            item.future.set_exception(exc)
