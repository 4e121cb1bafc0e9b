"""The audit log of one process: a :class:`Reader` and a :class:`ChainWriter` composed
over one backend, with the per-subject locks and this process's open intents.

Writing: write-ahead entries onto one hash chain (appended in groups by
:mod:`audit.writer`), erasure, and the admin entries a reveal or an export leaves;
reconciliation after a crash (:mod:`audit.reconcile`). Reading: :mod:`audit.reader`.

:meth:`AuditLog.open` connects, checks the store, and starts the writer task; nothing
starts in a constructor. :meth:`close` (or leaving ``async with``) commits what is
queued and stops it. Every awaited ``begin``/``finish``/``record`` returns once its own
entry is durable. Every failure of the store surfaces as ``AuditUnavailable`` (a value
it refuses as ``InvalidAuditInput``); an intent whose outcome could not be written is
closed by the next ``reconcile``; the wait for a customer's lock is bounded
(``LockTimeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Coroutine
from datetime import datetime
from typing import Any

from audit import crypto
from audit.backend import Backend
from audit.batch import Pending
from audit.bodies import admin_body, intent_body, intent_from_entry
from audit.checkpoint import Checkpoints
from audit.connect import check_master_key, connect_backend, migrate, read_head
from audit.entries import check_intent, check_outcome, check_reason, render, split_values
from audit.errors import AuditUnavailable, InvalidAuditInput, LockWait
from audit.failures import swallowed
from audit.idempotency import IdempotencyStore, erase_statement
from audit.ids import uuid7
from audit.locks import SubjectLocks, lock_key
from audit.reader import Reader
from audit.reconcile import OpenIntents, Resolver, reconcile
from audit.record import outcome_text
from audit.resolve import Attempts, ChangeResolver, resolve_unknowns
from audit.retention import DEFAULT_KEY_PERIOD_DAYS, ExpiryReport, expire, slot_expiry
from audit.review import Review
from audit.settle import Queued
from audit.types import Intent, Outcome, Page, VerifyReport
from audit.urls import parse_url
from audit.writer import ChainWriter
from common.vocabulary import Action

log = logging.getLogger(__name__)


class AuditLog:
    """The audit log of one process; several processes may share one database."""

    def __init__(
        self,
        backend: Backend,
        reader: Reader,
        writer: ChainWriter,
        locks: SubjectLocks,
        *,
        key_period_days: int = DEFAULT_KEY_PERIOD_DAYS,
        idempotency: IdempotencyStore | None = None,
    ) -> None:
        self._backend, self._reader, self._writer, self._locks = backend, reader, writer, locks
        #: the idempotency keys of writes (:mod:`audit.idempotency`), on the same store
        self.idempotency = idempotency
        self._key_period = key_period_days
        self._intents = OpenIntents()
        self._resolve_attempts = Attempts()
        self._closed = False
        #: outcomes queued by ``finish(durable=False)`` and not yet written
        self._queued = Queued(writer.flush)
        settled, settled_iter = self._queued.before, self._queued.before_iter
        # the read side, as the reader offers it; each read first waits for this
        # process's queued outcomes, so that it sees every outcome ``finish`` returned
        # (it reads its own writes)
        self.query = settled(reader.query)
        self.get = settled(reader.get)
        self.following = settled(reader.following)
        self.iter_entries = settled_iter(reader.iter_entries)
        self.head = settled(reader.head)
        self.verify = settled(reader.verify)
        # the review's rows and trends (audit.review): reads only, like the reader
        review = Review(backend)
        self.changes = settled(review.changes)
        self.trends = settled(review.trends)

    async def settle(self) -> None:
        """Until every outcome queued by ``finish(durable=False)`` so far is written or
        has failed (as logged there); at once when none is queued."""
        await self._queued.settle()

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
        lock_wait_seconds: float = 10.0,
        lock_connections: int = 24,
        on_lock_timeout: Callable[[LockWait], None] | None = None,
        key_period_days: int = DEFAULT_KEY_PERIOD_DAYS,
    ) -> AuditLog:
        """Open the log at ``url`` and start its writer. ``lock_wait_seconds`` bounds the
        wait for a customer's lock; ``lock_connections`` is the size of PostgreSQL's lock
        pool (one connection per write in flight); ``on_lock_timeout(wait)`` observes
        each wait given up; ``key_period_days`` is the retention key period
        (:mod:`audit.retention`)."""
        master_key = crypto.check_key(master_key, "master key")
        signing_key = crypto.check_key(signing_key, "signing key")
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise InvalidAuditInput("checkpoint_every and checkpoint_seconds must be positive")
        if lock_wait_seconds <= 0 or lock_connections < 1 or key_period_days < 1:
            raise InvalidAuditInput(
                "lock_wait_seconds, lock_connections and key_period_days must be positive"
            )
        store = parse_url(url)
        if create:
            await migrate(url)
        backend = await connect_backend(url, max_locks=lock_connections)
        try:
            head = await read_head(backend)
            await check_master_key(backend, master_key)
        except BaseException:
            await backend.close()
            raise
        public_key = crypto.public_key_of(signing_key)
        checkpoints = Checkpoints(signing_key, every=checkpoint_every, seconds=checkpoint_seconds)
        writer = ChainWriter(
            backend, master_key=master_key, checkpoints=checkpoints, on_batch=on_batch,
            head=head,
        )  # fmt: skip
        audit_log = cls(
            backend,
            Reader(backend, master_key=master_key, public_key=public_key),
            writer,
            SubjectLocks(backend, wait_seconds=lock_wait_seconds, on_timeout=on_lock_timeout),
            key_period_days=key_period_days,
            idempotency=IdempotencyStore(backend, master_key),
        )
        writer.start()
        log.info("audit store open (%s), head at seq %d", store.kind, head[0])
        return audit_log

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._writer.close()
        finally:
            await self._backend.close()

    async def __aenter__(self) -> AuditLog:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def ping(self) -> bool:
        if self._closed or not self._writer.alive:
            return False
        with swallowed(log, "audit store ping", level=logging.INFO):
            await self._backend.fetchall("SELECT 1")
            return True
        return False

    def public_key(self) -> bytes:
        return self._reader.public_key

    def lock_use(self) -> tuple[int, int]:
        """(PostgreSQL lock connections held by writes now, the pool's size); (0, 0) on
        SQLite, which needs none."""
        return self._backend.lock_use()

    def subject_lock(
        self, system: str, customer_id: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialise writes to one customer (:mod:`audit.locks`); LockTimeout, an
        AuditUnavailable, after ``lock_wait_seconds``."""
        return self._locks.hold(system, customer_id)

    # ------------------------------------------------------------------ writing
    async def begin(self, intent: Intent) -> str:
        """Write an intent; its id once it is durable."""
        return await self.begin_queued(intent)

    def begin_queued(self, intent: Intent) -> Coroutine[Any, Any, str]:
        """``begin`` with the intent checked and queued (errors raised) before it returns:
        the writer takes it before what the caller starts next (the gateway's re-read).
        Await the result (the id, once durable) at once: the intent is in flight till then."""
        check_intent(intent)
        # a change whose customer lock died with its session forwards nothing
        self._locks.check(intent.system, intent.customer_id)
        audit_id = uuid7()
        clear_before, clear_after, to_seal = split_values(intent)
        body = intent_body(audit_id, intent, "intent", None, None, clear_before, clear_after)
        pending = Pending(
            body, (intent.system, intent.customer_id), to_seal, opens_intent=True,
            expires=self._expires(body, intent, to_seal),
        )  # fmt: skip
        pending.intent = intent  # its text, and its outcome's, the short way
        in_flight = self._intents.in_flight
        in_flight[audit_id] = pending
        try:
            written = self._enqueue(pending)
        except BaseException:
            in_flight.pop(audit_id, None)
            raise
        return self._begun(audit_id, written)

    async def _begun(self, audit_id: str, written: asyncio.Future[str]) -> str:
        try:
            return await written
        except BaseException:
            self._intents.in_flight.pop(audit_id, None)
            raise

    async def finish(self, intent_id: str, outcome: Outcome, *, durable: bool = True) -> str:
        """Write the outcome of intent ``intent_id``; returns the outcome entry's id.

        ``durable=True`` returns once the outcome is committed and on disk. With
        ``durable=False`` it returns once the outcome is checked and queued, without
        waiting for it to be written: its batch commits without a sync of its own (the
        next durable commit syncs it). What a crash can then lose - the outcome only,
        never the intent, which the reconciler closes by re-reading the upstream - is
        in docs/audit.md, "Durability of an outcome". A failure to write it is logged
        and the intent is closed by the next ``reconcile``, as when ``finish`` raises."""
        check_outcome(outcome)
        begun = self._intents.in_flight.get(intent_id)
        intent = None if begun is None else begun.intent
        if intent is None:
            intent = intent_from_entry(await self._reader.open_intent(intent_id))
        body = intent_body(uuid7(), intent, "outcome", outcome, intent_id)
        pending = Pending(
            body, (intent.system, intent.customer_id), closes_intent=intent_id, durable=durable
        )
        if begun is not None:  # an intent of this process's, checked: the short way
            pending.text = outcome_text(body)  # None: the writer encodes and checks it
        if not durable:
            return self._finish_lazily(intent_id, pending)
        try:
            return await self._enqueue(pending)
        except BaseException:
            # no longer in flight either way: the next reconcile closes it, whatever its age
            self._intents.unrecorded.add(intent_id)
            raise
        finally:
            self._intents.in_flight.pop(intent_id, None)

    def _finish_lazily(self, intent_id: str, pending: Pending) -> str:
        """Queue an outcome without waiting for it; the intent stays in flight (no
        reconcile here closes it) until the outcome is committed or has failed
        (:meth:`_lazily_settled`, called by the writer: no done callback per outcome)."""
        pending.settled = self._lazily_settled
        try:
            written = self._enqueue(pending)
        except BaseException:
            self._intents.unrecorded.add(intent_id)
            self._intents.in_flight.pop(intent_id, None)
            raise
        self._queued.add(written)
        return str(pending.body["audit_id"])

    def _lazily_settled(self, pending: Pending) -> None:
        """An outcome queued by ``finish(durable=False)`` was written, or failed."""
        written, intent_id = pending.future, pending.closes_intent
        assert written is not None and intent_id is not None  # set by _finish_lazily
        self._queued.discard(written)
        intents = self._intents
        intents.in_flight.pop(intent_id, None)
        if written.cancelled() or written.exception() is not None:
            intents.unrecorded.add(intent_id)
            failure = "cancelled" if written.cancelled() else type(written.exception()).__name__
            log.warning(
                "audit outcome of intent %s not written (%s): the next reconcile closes it",
                intent_id, failure,
            )  # fmt: skip

    async def record(self, intent: Intent, outcome: Outcome) -> str:
        check_intent(intent)
        check_outcome(outcome)
        audit_id = uuid7()
        clear_before, clear_after, to_seal = split_values(intent)
        body = intent_body(audit_id, intent, "outcome", outcome, None, clear_before, clear_after)
        return await self._enqueue(
            Pending(body, (intent.system, intent.customer_id), to_seal,
                    expires=self._expires(body, intent, to_seal))
        )  # fmt: skip

    def _expires(self, body: dict[str, Any], intent: Intent, to_seal: list[Any]) -> str | None:
        """The retention slot of an entry's sealed values (:mod:`audit.retention`)."""
        if not to_seal:
            return None
        return slot_expiry(body["time"], intent.retention_days, self._key_period)

    async def expire(
        self, *, now: datetime | None = None, dry_run: bool = False
    ) -> ExpiryReport:
        """Destroy the keys whose retention period ended, an ``expire`` entry per subject
        (:func:`audit.retention.expire`); one process at a time."""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        return await expire(self._backend, self._append, now=now, dry_run=dry_run)

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
        body = admin_body(
            Action.ERASE,
            system,
            customer_id,
            actor=actor,
            roles=roles,
            request_id=request_id,
            reason=check_reason(reason),
        )
        # the subject's stored answers of idempotent writes go in the same transaction
        return await self._append(
            Pending(body, (system, customer_id), erase=True,
                    also=[erase_statement(system, customer_id)])
        )  # fmt: skip

    async def reconcile(
        self, resolver: Resolver | None = None, *, min_age_seconds: float = 0.0
    ) -> int:
        """Close intents that have no outcome (:mod:`audit.reconcile`): those older than
        ``min_age_seconds`` and not in flight here, and those whose outcome this process
        failed to write. ``resolver(system, customer_id, after)`` re-reads the upstream
        to tell whether the change took effect; without one the outcome is ``unknown``."""
        return await reconcile(
            self._reader, self._append, self._intents, resolver, min_age_seconds
        )

    async def resolve_unknowns(
        self,
        resolver: ChangeResolver,
        *,
        window_seconds: float,
        pause_seconds: float,
        settle_seconds: float = 0.0,
    ) -> int:
        """Resolve ``unknown`` outcomes by a re-read of the upstream (:mod:`audit.resolve`):
        a ``resolution`` entry each (applied / not_applied); how many were resolved."""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        return await resolve_unknowns(
            self._backend, self._reader, self._append, resolver, self._resolve_attempts,
            window_seconds=window_seconds, pause_seconds=pause_seconds,
            settle_seconds=settle_seconds,
        )  # fmt: skip

    def _enqueue(self, pending: Pending) -> asyncio.Future[str]:
        """Prepare and queue ``pending``: the future of its id, once it is committed.
        (``begin``, ``finish`` and ``record`` await it themselves: one coroutine less
        per entry than :meth:`_append`.)"""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        return self._writer.enqueue(pending)

    async def _append(self, pending: Pending) -> str:
        return await self._enqueue(pending)

    # ------------------------------------------------------------------ reading that leaves a trace
    async def reveal(
        self,
        audit_id: str,
        *,
        actor: str,
        roles: tuple[str, ...],
        reason: str,
        request_id: str,
        systems: Collection[str] | None = None,
    ) -> tuple[dict[str, Any], str]:
        """The entry in clear; first writes (durably) a ``reveal`` entry naming the reason.
        An entry outside ``systems`` is refused before anything is written."""
        reason = check_reason(reason)
        await self.settle()
        row = await self._reader.row(audit_id, systems)
        masked = render(int(row[0]), row[1], row[2], row[3])
        body = admin_body(
            Action.REVEAL,
            masked["system"],
            masked["customer_id"],
            actor=actor,
            roles=roles,
            request_id=request_id,
            reason=reason,
            target_id=audit_id,
        )
        reveal_id = await self._append(Pending(body, (body["system"], body["customer_id"])))
        return await self._reader.in_clear(*row), reveal_id

    async def export_subject(
        self,
        system: str,
        customer_id: str,
        *,
        actor: str,
        roles: tuple[str, ...],
        request_id: str,
    ) -> tuple[list[dict[str, Any]], str]:
        """GDPR Art. 15: every entry on one subject, oldest first, in clear unless erased."""
        body = admin_body(
            Action.EXPORT, system, customer_id, actor=actor, roles=roles, request_id=request_id
        )
        await self.settle()
        rows = await self._reader.of_subject(system, customer_id)
        export_id = await self._append(Pending(body, (system, customer_id)))
        cache: dict[str, bytes | None] = {}
        return [await self._reader.in_clear(r[0], r[1], r[2], r[3], cache) for r in rows], export_id


__all__ = ["AuditLog", "Page", "VerifyReport", "connect_backend", "lock_key"]
