"""The audit log: write-ahead entries onto one hash chain (appended in groups by
:mod:`audit.writer`), reconciliation after a crash, erasure, per-subject locks; the
read side (queries, reveal, export, verify) comes from :mod:`audit.review`.

Every awaited ``begin``/``finish``/``record`` returns once its own entry is durable.
Every failure of the store surfaces as ``AuditUnavailable`` (a value it refuses as
``InvalidAuditInput``); an intent whose outcome could not be written is closed by the
next ``reconcile``; the wait for a customer's lock is bounded (``LockTimeout``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from audit import crypto
from audit.backend import HEAD_SQL, Backend
from audit.entries import (
    ERASED,
    UNREADABLE,
    base_body,
    check_intent,
    check_outcome,
    check_reason,
    parse_iso,
    split_values,
)
from audit.errors import (
    AuditError,
    AuditUnavailable,
    EntryNotFound,
    InvalidAuditInput,
    KeyMismatch,
    LockWait,
    StoreNotInitialised,
)
from audit.ids import uuid7
from audit.locks import SubjectLocks, lock_key
from audit.review import Review
from audit.types import OUTCOMES, Intent, Outcome, Page, VerifyReport
from audit.urls import parse_url
from audit.writer import ChainWriter, Pending

log = logging.getLogger(__name__)

Resolver = Callable[[str, str, Mapping[str, Any]], Awaitable[str]]

_RESTARTED = "reconciled: no outcome was recorded (restart)"
_UNRECORDED = "reconciled: the outcome could not be recorded (audit store unavailable)"


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
        lock_wait_seconds: float = 10.0,
        on_lock_timeout: Callable[[LockWait], None] | None = None,
    ) -> None:
        super().__init__(
            backend, master_key=master_key, public_key=crypto.public_key_of(signing_key)
        )
        self._open: dict[str, Intent] = {}  # intents in flight in this process
        # intents whose outcome this process could not write: no longer in flight
        self._unrecorded: set[str] = set()
        self._closed = False
        self._locks = SubjectLocks(
            backend, wait_seconds=lock_wait_seconds, on_timeout=on_lock_timeout
        )
        self._chain = ChainWriter(
            backend,
            master_key=master_key,
            signing_key=signing_key,
            public_key=self._public_key,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            on_batch=on_batch,
            head_seq=head_seq,
        )

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
    ) -> AuditLog:
        """Open the log at ``url``. ``lock_wait_seconds`` bounds the wait for a customer's
        lock; ``lock_connections`` is the size of PostgreSQL's lock pool (one connection
        per write in flight); ``on_lock_timeout(wait)`` observes each wait given up."""
        master_key = crypto.check_key(master_key, "master key")
        signing_key = crypto.check_key(signing_key, "signing key")
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise InvalidAuditInput("checkpoint_every and checkpoint_seconds must be positive")
        if lock_wait_seconds <= 0 or lock_connections < 1:
            raise InvalidAuditInput("lock_wait_seconds and lock_connections must be positive")
        store = parse_url(url)
        if create:
            from audit.migrate import upgrade

            try:
                await upgrade(url)
            except AuditError:
                raise
            except Exception as exc:  # an unreachable store: say which kind, not the URL
                raise AuditUnavailable(
                    f"cannot migrate the audit store ({type(exc).__name__})"
                ) from exc
        backend = await connect_backend(url, max_locks=lock_connections)
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
            lock_wait_seconds=lock_wait_seconds,
            on_lock_timeout=on_lock_timeout,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._chain.close()
        await self._backend.close()

    async def ping(self) -> bool:
        if self._closed or not self._chain.alive:
            return False
        try:
            await self._backend.fetchall("SELECT 1")
        except Exception:
            return False
        return True

    def public_key(self) -> bytes:
        return self._public_key

    def lock_use(self) -> tuple[int, int]:
        """(PostgreSQL lock connections held by writes now, the pool's size); (0, 0) on
        SQLite, which needs none."""
        return self._backend.lock_use()

    # ------------------------------------------------------------------ writing
    async def begin(self, intent: Intent) -> str:
        check_intent(intent)
        audit_id = uuid7()
        clear_before, clear_after, to_seal = split_values(intent)
        body = self._intent_body(audit_id, intent, "intent", None, None)
        body["before"], body["after"] = clear_before, clear_after
        pending = Pending(body, (intent.system, intent.customer_id), to_seal, opens_intent=True)
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
        pending = Pending(body, (intent.system, intent.customer_id), closes_intent=intent_id)
        try:
            return await self._append(pending)
        except BaseException:
            # no longer in flight either way: the next reconcile closes it, whatever its age
            self._unrecorded.add(intent_id)
            raise
        finally:
            self._open.pop(intent_id, None)

    async def record(self, intent: Intent, outcome: Outcome) -> str:
        check_intent(intent)
        check_outcome(outcome)
        audit_id = uuid7()
        clear_before, clear_after, to_seal = split_values(intent)
        body = self._intent_body(audit_id, intent, "outcome", outcome, None)
        body["before"], body["after"] = clear_before, clear_after
        return await self._append(Pending(body, (intent.system, intent.customer_id), to_seal))

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
        return await self._append(Pending(body, (system, customer_id), erase=True))

    async def _write_admin(self, body: dict[str, Any]) -> str:
        return await self._append(Pending(body, (body["system"], body["customer_id"])))

    async def reconcile(
        self, resolver: Resolver | None = None, *, min_age_seconds: float = 0.0
    ) -> int:
        """Close intents that have no outcome (a crash between ``begin`` and ``finish``).

        With a ``resolver(system, customer_id, after)`` the upstream is re-read to tell
        whether the change took effect (it returns an outcome); otherwise, or when it
        fails, the outcome is ``unknown``. Intents still in flight in this process, and
        those younger than ``min_age_seconds`` (other replicas' in-flight writes), stay;
        those whose outcome this process failed to write are closed whatever their age.
        """
        unrecorded = set(self._unrecorded)
        rows = await self._backend.fetchall(
            "SELECT e.seq, e.body, e.prev_hash, e.hash, o.created_at FROM audit_open_intent o"
            " JOIN audit_entry e ON e.audit_id = o.audit_id ORDER BY o.seq"
        )
        now = time.time()
        closed = 0
        still_open: set[str] = set()
        for seq, body_text, prev, hash_, created_at in rows:
            entry = self._render(seq, body_text, prev, hash_, clear=False)
            still_open.add(entry["audit_id"])
            if entry["audit_id"] in self._open:
                continue
            orphan = entry["audit_id"] in unrecorded
            if not orphan and now - parse_iso(created_at).timestamp() < min_age_seconds:
                continue
            result = "unknown"
            if resolver is not None:
                clear = await self._clear_entry(seq, body_text, prev, hash_)
                unreadable = (ERASED, UNREADABLE)  # not values the upstream could hold
                after = {k: v for k, v in clear["after"].items() if v not in unreadable}
                try:
                    answer = await resolver(entry["system"], entry["customer_id"], after)
                    result = answer if answer in OUTCOMES else "unknown"
                except Exception:  # a resolver failure must not stop start-up
                    log.warning("audit reconcile: resolver failed for entry %s", entry["audit_id"])
            intent = _intent_from_entry(entry)
            body = self._intent_body(uuid7(), intent, "outcome", Outcome(result), entry["audit_id"])
            body["reason"] = _UNRECORDED if orphan else _RESTARTED
            pending = Pending(
                body,
                (intent.system, intent.customer_id),
                closes_intent=entry["audit_id"],
                exclusive_close=True,
            )
            try:
                await self._append(pending)
            except InvalidAuditInput:  # another replica closed it first
                self._unrecorded.discard(entry["audit_id"])
                continue
            self._unrecorded.discard(entry["audit_id"])
            closed += 1
        # closed meanwhile (the outcome did reach the store, or another replica closed it)
        self._unrecorded -= unrecorded - still_open
        return closed

    def subject_lock(
        self, system: str, customer_id: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialise writes to one customer (:mod:`audit.locks`); LockTimeout, an
        AuditUnavailable, after ``lock_wait_seconds``."""
        return self._locks.hold(system, customer_id)

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

    async def _append(self, pending: Pending) -> str:
        if self._closed or not self._chain.alive:
            raise AuditUnavailable("the audit log is closed")
        return await self._chain.append(pending)


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


async def connect_backend(url: str, *, max_locks: int = 24) -> Backend:
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
        return await PgBackend.connect(store.dsn, max_locks=max_locks)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"cannot reach the audit store ({type(exc).__name__})") from exc


__all__ = ["AuditLog", "Page", "VerifyReport", "connect_backend", "lock_key"]
