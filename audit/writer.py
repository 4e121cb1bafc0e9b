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
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit import crypto
from audit.backend import INSERT_ENTRY, Backend, ChainTx, Statement
from audit.chain import canonical, entry_hash
from audit.entries import check_storable, now_iso, parse_iso
from audit.errors import (
    AuditError,
    AuditUnavailable,
    InvalidAuditInput,
    KeyMismatch,
    ValueRefused,
)
from audit.ids import uuid7

log = logging.getLogger(__name__)

Subject = tuple[str, str]

_MAX_BATCH = 4096
_INSERT_KEY = (
    "INSERT INTO audit_subject_key (key_id, system, customer_id, wrapped, kek_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_OPEN = "INSERT INTO audit_open_intent (audit_id, seq, created_at) VALUES (?, ?, ?)"
_DELETE_OPEN = "DELETE FROM audit_open_intent WHERE audit_id = ?"
_DESTROY_KEYS = (
    "UPDATE audit_subject_key SET wrapped = NULL, erased_at = ?"
    " WHERE system = ? AND customer_id = ? AND erased_at IS NULL"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoint (seq, hash, time, public_key, signature) VALUES (?, ?, ?, ?, ?)"
)
_UPDATE_HEAD = (
    "UPDATE audit_head SET seq = ?, hash = ?, checkpoint_seq = ?, checkpoint_at = ? WHERE id = 1"
)


@dataclass
class Pending:
    """One entry on its way to the chain."""

    body: dict[str, Any] = field(repr=False)
    subject: Subject = field(repr=False)
    to_seal: list[tuple[str, str, bytes]] = field(default_factory=list, repr=False)
    opens_intent: bool = False
    closes_intent: str | None = None
    exclusive_close: bool = False
    erase: bool = False
    future: asyncio.Future[str] | None = None
    # Prepared by the caller, outside the append lock, when the subject's key is known:
    text: str | None = field(default=None, repr=False)
    key_id: str | None = None


class ChainWriter:
    """Owns the append side of one process: the queue, the key cache, the writer task."""

    def __init__(
        self,
        backend: Backend,
        *,
        master_key: bytes,
        signing_key: bytes,
        public_key: bytes,
        checkpoint_every: int,
        checkpoint_seconds: float,
        on_batch: Callable[[int, float], None] | None,
        head_seq: int,
    ) -> None:
        self._backend = backend
        self._master_key = master_key
        self._signing_key = signing_key
        self._public_key = public_key
        self._checkpoint_every = checkpoint_every
        self._checkpoint_seconds = checkpoint_seconds
        self._on_batch = on_batch
        self._last_seq = head_seq
        self._opened_at = time.time()
        self._dirty = False  # appended since this process's last checkpoint
        self._keys: dict[Subject, tuple[str, bytes]] = {}
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._held: Pending | None = None
        self._task = asyncio.create_task(self._write_loop(), name="audit-writer")

    @property
    def alive(self) -> bool:
        return not self._task.done()

    async def append(self, pending: Pending) -> str:
        """Prepare ``pending`` here, queue it, and return its id once it is committed."""
        self._prepare(pending)
        pending.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(pending)
        return await pending.future

    async def close(self) -> None:
        """Commit what is queued, stop, and sign the head if this process appended."""
        self._queue.put_nowait(None)
        await self._task
        with contextlib.suppress(Exception):
            await self._checkpoint_only()

    def _prepare(self, pending: Pending) -> None:
        """Seal and encode in the caller's task, so that the append lock is held only to
        chain and insert. The writer redoes it if the key changed meanwhile (erasure)."""
        if pending.to_seal:
            cached = self._keys.get(pending.subject)
            if cached is not None:  # else the writer seals, once it has the key
                _seal_into(pending, cached)
                pending.key_id = cached[0]
        try:  # always here: a value that cannot be encoded is this caller's error alone
            pending.text = canonical(pending.body)
        except (TypeError, ValueError) as exc:
            raise InvalidAuditInput("a before/after value is not JSON-serialisable") from exc
        check_storable(pending.body, pending.text)

    def _is_current(self, item: Pending) -> bool:
        if item.text is None:
            return False
        if not item.to_seal:
            return True
        cached = self._keys.get(item.subject)
        return cached is not None and cached[0] == item.key_id

    async def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = self._held
            self._held = None
            if first is None:
                try:
                    async with asyncio.timeout(self._checkpoint_seconds):
                        first = await self._queue.get()
                except TimeoutError:
                    with contextlib.suppress(Exception):
                        await self._checkpoint_only()
                    continue
            if first is None:
                break
            batch = [first]
            if not first.erase:
                while len(batch) < _MAX_BATCH and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stop = True
                        break
                    if item.erase:  # an erasure goes alone: keys change under it
                        self._held = item
                        break
                    batch.append(item)
            started = time.perf_counter()
            await self._commit_isolating(batch)
            if self._on_batch is not None:
                with contextlib.suppress(Exception):
                    self._on_batch(len(batch), time.perf_counter() - started)
        if self._held is not None and self._held.future is not None:
            self._held.future.set_exception(AuditUnavailable("the audit log is closed"))
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and item.future is not None and not item.future.done():
                item.future.set_exception(AuditUnavailable("the audit log is closed"))

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

    async def _commit(self, batch: list[Pending]) -> None:
        tx = await self._backend.chain_tx()
        try:
            ids, new_keys, head_seq = await self._build_and_write(tx, batch)
        except BaseException:
            await tx.rollback()
            raise
        self._last_seq = head_seq
        self._dirty = True
        self._keys.update(new_keys)
        for item in batch:
            if item.erase:
                self._keys.pop(item.subject, None)
        for item, audit_id in zip(batch, ids, strict=True):
            if item.future is not None and not item.future.done():
                if audit_id is None:
                    item.future.set_exception(InvalidAuditInput("that intent is already closed"))
                else:
                    item.future.set_result(audit_id)

    async def _build_and_write(
        self, tx: ChainTx, batch: list[Pending]
    ) -> tuple[list[str | None], dict[Subject, tuple[str, bytes]], int]:
        seq, head_hash, cp_seq, cp_at = tx.head
        seq, cp_seq = int(seq), int(cp_seq)
        if seq != self._last_seq:  # other writers appended: drop keys they erased
            for system, cid in await tx.fetchall(
                "SELECT system, customer_id FROM audit_entry WHERE seq > ? AND action = 'erase'",
                [self._last_seq],
            ):
                self._keys.pop((system, cid), None)
        keys, new_keys, key_rows = await self._keys_for(tx, batch)
        exclusive = [i.closes_intent for i in batch if i.exclusive_close and i.closes_intent]
        still_open: set[str] = set()
        if exclusive:
            marks = ",".join("?" * len(exclusive))
            still_open = {
                r[0]
                for r in await tx.fetchall(
                    f"SELECT audit_id FROM audit_open_intent WHERE audit_id IN ({marks})",  # noqa: S608 - only placeholders
                    exclusive,
                )
            }
        now = now_iso()
        rows: list[tuple[int, str, str, str]] = []
        opens: list[tuple[str, int, str]] = []
        closes: list[tuple[str]] = []
        destroys: list[tuple[str, str, str]] = []
        ids: list[str | None] = []
        for item in batch:
            if item.exclusive_close and item.closes_intent not in still_open:
                ids.append(None)
                continue
            body = item.body
            if item.text is not None and self._is_current(item) and item.subject not in keys:
                text = item.text
            else:
                if item.to_seal:
                    _seal_into(item, keys[item.subject])
                text = canonical(body)
            seq += 1
            digest = entry_hash(seq, head_hash, text)
            rows.append((seq, text, head_hash, digest))
            head_hash = digest
            ids.append(body["audit_id"])
            if item.opens_intent:
                opens.append((body["audit_id"], seq, body["time"]))
            if item.closes_intent:
                closes.append((item.closes_intent,))
            if item.erase:
                destroys.append((now, item.subject[0], item.subject[1]))
        statements: list[Statement] = [
            (_INSERT_KEY, key_rows),
            (INSERT_ENTRY, rows),
            (_INSERT_OPEN, opens),
            (_DELETE_OPEN, closes),
            (_DESTROY_KEYS, destroys),
        ]
        last_checkpoint = parse_iso(cp_at).timestamp() if cp_at else self._opened_at
        due = seq - cp_seq >= self._checkpoint_every or (
            time.time() - last_checkpoint >= self._checkpoint_seconds
        )
        if due and seq > cp_seq:
            statements.append((_INSERT_CHECKPOINT, [self._checkpoint_row(seq, head_hash, now)]))
            cp_seq, cp_at = seq, now
        statements.append((_UPDATE_HEAD, [(seq, head_hash, cp_seq, cp_at)]))
        await tx.commit(statements)
        return ids, new_keys, seq

    async def _keys_for(
        self, tx: ChainTx, batch: list[Pending]
    ) -> tuple[
        dict[Subject, tuple[str, bytes]], dict[Subject, tuple[str, bytes]], list[tuple[Any, ...]]
    ]:
        keys: dict[Subject, tuple[str, bytes]] = {}
        new_keys: dict[Subject, tuple[str, bytes]] = {}
        key_rows: list[tuple[Any, ...]] = []
        for item in batch:
            if not item.to_seal or item.subject in keys or self._is_current(item):
                continue
            cached = self._keys.get(item.subject)
            if cached is not None:
                keys[item.subject] = cached
                continue
            system, cid = item.subject
            found = await tx.fetchall(
                "SELECT key_id, wrapped FROM audit_subject_key"
                " WHERE system = ? AND customer_id = ? AND erased_at IS NULL",
                [system, cid],
            )
            if found and found[0][1] is not None:
                key_id = found[0][0]
                try:
                    data_key = crypto.unwrap_key(
                        self._master_key, bytes(found[0][1]), key_id, system, cid
                    )
                except crypto.SealError as exc:
                    raise KeyMismatch("a subject key does not open under the master key") from exc
            else:
                if not key_rows:
                    await self._check_not_rotated(tx)
                key_id, data_key = uuid7(), crypto.new_data_key()
                wrapped = crypto.wrap_key(self._master_key, data_key, key_id, system, cid)
                key_rows.append(
                    (key_id, system, cid, wrapped, crypto.kek_id(self._master_key), now_iso())
                )
            keys[item.subject] = new_keys[item.subject] = (key_id, data_key)
        return keys, new_keys, key_rows

    async def _check_not_rotated(self, tx: ChainTx) -> None:
        """Before wrapping a new key: refuse if the store's keys were re-wrapped under
        another master key since this process started (it would mix master keys)."""
        other = await tx.fetchall(
            "SELECT key_id FROM audit_subject_key WHERE wrapped IS NOT NULL AND kek_id <> ?"
            " LIMIT 1",
            [crypto.kek_id(self._master_key)],
        )
        if other:
            raise AuditUnavailable(
                "the master key was rotated: restart this process with the current key"
            )

    def _checkpoint_row(self, seq: int, head_hash: str, now: str) -> tuple[Any, ...]:
        signature = crypto.sign_checkpoint(self._signing_key, seq, head_hash, now)
        return (seq, head_hash, now, self._public_key.hex(), signature.hex())

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
                    (_INSERT_CHECKPOINT, [self._checkpoint_row(int(seq), head_hash, now)]),
                    (_UPDATE_HEAD, [(int(seq), head_hash, int(seq), now)]),
                ]
            )
            self._dirty = False
        except BaseException:
            await tx.rollback()
            raise


def _fail(items: list[Pending], exc: BaseException) -> None:
    for item in items:
        if item.future is not None and not item.future.done():
            item.future.set_exception(exc)


def _seal_into(item: Pending, key: tuple[str, bytes]) -> None:
    key_id, data_key = key
    body = item.body
    sealed: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    for side, path, plain in item.to_seal:
        sealed[side][path] = crypto.seal_plain(data_key, plain, body["audit_id"], side, path)
    body["sealed"] = sealed
    body["key_id"] = key_id
