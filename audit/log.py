"""The audit log: write-ahead entries, group commit onto one hash chain, review.

Callers put entries on a queue; one writer task takes everything waiting, appends it in
one transaction under the database's append lock, and only then resolves each caller's
future. So every awaited ``begin``/``finish``/``record`` returns once its own entry is
durable, and a burst of requests costs one disk flush, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit import crypto
from audit.backend import HEAD_SQL, INSERT_ENTRY, Backend, ChainTx, Statement
from audit.chain import canonical, entry_hash
from audit.entries import (
    base_body,
    check_intent,
    check_outcome,
    check_reason,
    now_iso,
    parse_iso,
    split_values,
)
from audit.errors import (
    AuditError,
    AuditUnavailable,
    EntryNotFound,
    InvalidAuditInput,
    KeyMismatch,
    StoreNotInitialised,
)
from audit.ids import uuid7
from audit.review import Review
from audit.types import OUTCOMES, Intent, Outcome, Page, VerifyReport
from audit.urls import parse_url

log = logging.getLogger(__name__)

Subject = tuple[str, str]
Resolver = Callable[[str, str, Mapping[str, Any]], Awaitable[str]]

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
class _Pending:
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


def lock_key(system: str, customer_id: str) -> int:
    """A signed 64-bit advisory-lock key for one data subject."""
    digest = hashlib.sha256(f"{system}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AuditLog(Review):
    """The audit log of one process; several processes may share one database."""

    def __init__(
        self,
        backend: Backend,
        *,
        master_key: bytes,
        signing_key: bytes,
        checkpoint_every: int,
        checkpoint_seconds: float,
        on_batch: Callable[[int, float], None] | None,
        head_seq: int,
    ) -> None:
        super().__init__(
            backend, master_key=master_key, public_key=crypto.public_key_of(signing_key)
        )
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every
        self._checkpoint_seconds = checkpoint_seconds
        self._on_batch = on_batch
        self._last_seq = head_seq
        self._opened_at = time.time()
        self._dirty = False  # appended since this process's last checkpoint
        self._keys: dict[Subject, tuple[str, bytes]] = {}
        self._open: dict[str, Intent] = {}
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._held: _Pending | None = None
        self._closed = False
        self._locks: dict[Subject, tuple[asyncio.Lock, int]] = {}
        self._writer = asyncio.create_task(self._write_loop(), name="audit-writer")

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(
        cls,
        url: str,
        *,
        master_key: bytes,
        signing_key: bytes,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        on_batch: Callable[[int, float], None] | None = None,
        create: bool = False,
    ) -> AuditLog:
        master_key = crypto.check_key(master_key, "master key")
        signing_key = crypto.check_key(signing_key, "signing key")
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise InvalidAuditInput("checkpoint_every and checkpoint_seconds must be positive")
        store = parse_url(url)
        if create:
            from audit.migrate import upgrade

            await upgrade(url)
        backend = await connect_backend(url)
        try:
            head = await _head(backend)
            keks = await backend.fetchall(
                "SELECT DISTINCT kek_id FROM audit_subject_key WHERE wrapped IS NOT NULL"
            )
            if any(row[0] != crypto.kek_id(master_key) for row in keks):
                raise KeyMismatch("the master key does not match the store's subject keys")
        except BaseException:
            await backend.close()
            raise
        log.info("audit store open (%s), head at seq %d", store.kind, head[0])
        return cls(
            backend,
            master_key=master_key,
            signing_key=signing_key,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            on_batch=on_batch,
            head_seq=int(head[0]),
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._queue.put(None)
        await self._writer
        with contextlib.suppress(Exception):
            await self._checkpoint_only()
        await self._backend.close()

    async def ping(self) -> bool:
        if self._closed or self._writer.done():
            return False
        try:
            await self._backend.fetchall("SELECT 1")
        except Exception:
            return False
        return True

    def public_key(self) -> bytes:
        return self._public_key

    # ------------------------------------------------------------------ writing
    async def begin(self, intent: Intent) -> str:
        check_intent(intent)
        audit_id = uuid7()
        clear_before, clear_after, to_seal = split_values(intent)
        body = self._intent_body(audit_id, intent, "intent", None, None)
        body["before"], body["after"] = clear_before, clear_after
        pending = _Pending(body, (intent.system, intent.customer_id), to_seal, opens_intent=True)
        self._open[audit_id] = intent
        try:
            return await self._append(pending)
        except BaseException:
            self._open.pop(audit_id, None)
            raise

    async def finish(self, intent_id: str, outcome: Outcome) -> str:
        check_outcome(outcome)
        intent = self._open.get(intent_id) or await self._load_intent(intent_id)
        body = self._intent_body(uuid7(), intent, "outcome", outcome, intent_id)
        pending = _Pending(body, (intent.system, intent.customer_id), closes_intent=intent_id)
        audit_id = await self._append(pending)
        self._open.pop(intent_id, None)
        return audit_id

    async def record(self, intent: Intent, outcome: Outcome) -> str:
        check_intent(intent)
        check_outcome(outcome)
        audit_id = uuid7()
        clear_before, clear_after, to_seal = split_values(intent)
        body = self._intent_body(audit_id, intent, "outcome", outcome, None)
        body["before"], body["after"] = clear_before, clear_after
        return await self._append(_Pending(body, (intent.system, intent.customer_id), to_seal))

    async def erase(
        self,
        system: str,
        customer_id: str,
        *,
        actor: str,
        roles: tuple[str, ...],
        reason: str,
        request_id: str,
    ) -> str:
        """GDPR Art. 17: destroy the subject's data key(s) and write an ``erase`` entry, in
        one transaction. The entries stay and the chain still verifies."""
        body = self._admin_body(
            "erase",
            system,
            customer_id,
            actor=actor,
            roles=roles,
            request_id=request_id,
            reason=check_reason(reason),
        )
        return await self._append(_Pending(body, (system, customer_id), erase=True))

    async def _write_admin(self, body: dict[str, Any]) -> str:
        return await self._append(_Pending(body, (body["system"], body["customer_id"])))

    async def reconcile(
        self, resolver: Resolver | None = None, *, min_age_seconds: float = 0.0
    ) -> int:
        """Close intents that have no outcome (a crash between ``begin`` and ``finish``).

        With a ``resolver(system, customer_id, after)`` the upstream is re-read to tell
        whether the change took effect (it returns an outcome); otherwise, or when it
        fails, the outcome is ``unknown``. Intents still in flight in this process, and
        those younger than ``min_age_seconds`` (other replicas' in-flight writes), stay.
        """
        rows = await self._backend.fetchall(
            "SELECT e.seq, e.body, e.prev_hash, e.hash, o.created_at FROM audit_open_intent o"
            " JOIN audit_entry e ON e.audit_id = o.audit_id ORDER BY o.seq"
        )
        now = time.time()
        closed = 0
        for seq, body_text, prev, hash_, created_at in rows:
            entry = self._render(seq, body_text, prev, hash_, clear=False)
            if entry["audit_id"] in self._open:
                continue
            if now - parse_iso(created_at).timestamp() < min_age_seconds:
                continue
            result = "unknown"
            if resolver is not None:
                clear = await self._clear_entry(seq, body_text, prev, hash_)
                after = {k: v for k, v in clear["after"].items() if v not in ("erased",)}
                try:
                    answer = await resolver(entry["system"], entry["customer_id"], after)
                    result = answer if answer in OUTCOMES else "unknown"
                except Exception:  # a resolver failure must not stop start-up
                    log.warning("audit reconcile: resolver failed for entry %s", entry["audit_id"])
            intent = _intent_from_entry(entry)
            body = self._intent_body(uuid7(), intent, "outcome", Outcome(result), entry["audit_id"])
            body["reason"] = "reconciled: no outcome was recorded (restart)"
            pending = _Pending(
                body,
                (intent.system, intent.customer_id),
                closes_intent=entry["audit_id"],
                exclusive_close=True,
            )
            try:
                await self._append(pending)
            except InvalidAuditInput:  # another replica closed it first
                continue
            closed += 1
        return closed

    @contextlib.asynccontextmanager
    async def subject_lock(self, system: str, customer_id: str) -> AsyncIterator[None]:
        subject = (system, customer_id)
        lock, users = self._locks.get(subject, (asyncio.Lock(), 0))
        self._locks[subject] = (lock, users + 1)
        try:
            async with lock, self._backend.subject_lock(lock_key(system, customer_id)):
                yield
        finally:
            lock, users = self._locks[subject]
            if users <= 1:
                del self._locks[subject]
            else:
                self._locks[subject] = (lock, users - 1)

    # ------------------------------------------------------------------ internals
    def _intent_body(
        self,
        audit_id: str,
        intent: Intent,
        phase: str,
        outcome: Outcome | None,
        intent_id: str | None,
    ) -> dict[str, Any]:
        return base_body(
            audit_id,
            actor=intent.actor,
            roles=intent.roles,
            system=intent.system,
            customer_id=intent.customer_id,
            purpose=intent.purpose,
            request_id=intent.request_id,
            action=intent.action,
            phase=phase,
            outcome=outcome,
            intent_id=intent_id,
            changed=intent.changed,
            policy_version=intent.policy_version,
        )

    async def _load_intent(self, intent_id: str) -> Intent:
        rows = await self._backend.fetchall(
            "SELECT e.seq, e.body, e.prev_hash, e.hash FROM audit_entry e"
            " JOIN audit_open_intent o ON o.audit_id = e.audit_id WHERE e.audit_id = ?",
            [intent_id],
        )
        if not rows:
            raise EntryNotFound(f"no open intent {intent_id}")
        return _intent_from_entry(self._render(*rows[0], clear=False))

    async def _append(self, pending: _Pending) -> str:
        if self._closed or self._writer.done():
            raise AuditUnavailable("the audit log is closed")
        self._prepare(pending)
        pending.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(pending)
        return await pending.future

    def _prepare(self, pending: _Pending) -> None:
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

    def _is_current(self, item: _Pending) -> bool:
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
            try:
                await self._commit(batch)
            except AuditError as exc:
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(exc)
            except Exception as exc:
                log.error("audit store append failed: %s", type(exc).__name__)
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(
                            AuditUnavailable("the audit store cannot take the entry")
                        )
            if self._on_batch is not None:
                with contextlib.suppress(Exception):
                    self._on_batch(len(batch), time.perf_counter() - started)
        if self._held is not None and self._held.future is not None:
            self._held.future.set_exception(AuditUnavailable("the audit log is closed"))
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and item.future is not None and not item.future.done():
                item.future.set_exception(AuditUnavailable("the audit log is closed"))

    async def _commit(self, batch: list[_Pending]) -> None:
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
        self, tx: ChainTx, batch: list[_Pending]
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
        self, tx: ChainTx, batch: list[_Pending]
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
                key_id, data_key = uuid7(), crypto.new_data_key()
                wrapped = crypto.wrap_key(self._master_key, data_key, key_id, system, cid)
                key_rows.append(
                    (key_id, system, cid, wrapped, crypto.kek_id(self._master_key), now_iso())
                )
            keys[item.subject] = new_keys[item.subject] = (key_id, data_key)
        return keys, new_keys, key_rows

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


def _seal_into(item: _Pending, key: tuple[str, bytes]) -> None:
    key_id, data_key = key
    body = item.body
    sealed: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    for side, path, plain in item.to_seal:
        sealed[side][path] = crypto.seal_plain(data_key, plain, body["audit_id"], side, path)
    body["sealed"] = sealed
    body["key_id"] = key_id


def _intent_from_entry(entry: Mapping[str, Any]) -> Intent:
    return Intent(
        actor=entry["actor"],
        roles=tuple(entry["roles"]),
        system=entry["system"],
        customer_id=entry["customer_id"],
        purpose=entry["purpose"],
        request_id=entry["request_id"],
        action=entry["action"],
        changed=tuple(entry["changed"]),
        before={},
        after={},
        protected={},
        policy_version=entry["policy_version"] or "",
    )


async def _head(backend: Backend) -> tuple[Any, ...]:
    try:
        rows = await backend.fetchall(HEAD_SQL)
    except Exception as exc:
        raise StoreNotInitialised(
            "the audit store has no schema: run `gdpr-gateway db upgrade`"
        ) from exc
    if not rows:
        raise StoreNotInitialised("the audit store has no head row: run `gdpr-gateway db upgrade`")
    return rows[0]


async def connect_backend(url: str) -> Backend:
    store = parse_url(url)
    try:
        if store.kind == "sqlite":
            from audit.store_sqlite import SqliteBackend

            assert store.path is not None
            if not store.path.exists():
                raise StoreNotInitialised(
                    "the audit store file does not exist: run `gdpr-gateway db upgrade`"
                )
            return await SqliteBackend.connect(store.path)
        from audit.store_pg import PgBackend

        assert store.dsn is not None
        return await PgBackend.connect(store.dsn)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"cannot reach the audit store ({type(exc).__name__})") from exc


__all__ = ["AuditLog", "Page", "VerifyReport", "connect_backend", "lock_key"]
