"""The path of one change (docs/architecture.md, "The path of one change"), free of HTTP.

Handlers authenticate, parse and shape answers; this module decides, audits and
forwards. It raises only domain errors (``service.errors``, ``audit.errors``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from audit import AuditLog, Outcome
from audit.errors import AuditUnavailable, InvalidAuditInput
from common.vocabulary import Action, AuditOutcome, Problem, Purpose, Verdict, parse
from policies import Decision, PolicyEngine
from policies.merge import merge_patch
from service.access import authorize
from service.change_steps import (
    attempted,
    discard,
    elapsed_ms,
    intent_for,
    read_back,
    read_failed,
    record_etag,
    with_audit,
)
from service.errors import (
    CustomerNotFound,
    EditConflict,
    FieldProblem,
    GatewayError,
    PolicyDenied,
    PreconditionFailed,
    UnknownSystem,
    UpstreamError,
    UpstreamOutcomeUnknown,
    ValidationFailed,
)
from service.gateway_types import Admitted, Landed, ReadResult, Request, UpdateResult
from service.inflight import InFlight
from service.logs import log_event
from service.metrics import Metrics
from service.upstreams import Connector

log = logging.getLogger("gdpr_gateway.gateway")


class Gateway:
    """Composes the policy engine, the audit log and the connectors.

    ``engines()`` returns the policy engine in force; it may change while the gateway
    runs (service/reload.py), so each request reads it once, at its start, and decides,
    masks and audits with that one. ``writes`` counts changes holding a customer's lock.
    """

    def __init__(
        self,
        engines: Callable[[], PolicyEngine],
        audit: AuditLog,
        connectors: Mapping[str, Connector],
        metrics: Metrics,
        *,
        conflict_check: bool = True,
        read_purpose_required: bool = True,
    ) -> None:
        self.engines = engines
        self.writes = InFlight()
        self.audit = audit
        self.connectors = dict(connectors)
        self.metrics = metrics
        self.conflict_check = conflict_check
        self.read_purpose_required = read_purpose_required

    # -- the pieces every route needs -------------------------------------------------

    def connector(self, system: str) -> Connector:
        try:
            return self.connectors[system]
        except KeyError:
            raise UnknownSystem("no system of that name is configured") from None

    def admit(self, req: Request, roles: frozenset[str]) -> Admitted:
        """One of ``roles`` held (``service.access``), the system known and in the
        principal's scope: 403/404 before anything is read, audited or forwarded."""
        authorize(req.principal, roles, req.system, known=self.connectors)
        return Admitted(req, self.connectors[req.system])

    async def _record_rejection(
        self, engine: PolicyEngine, req: Request, action: Action, code: Problem,
        changed: tuple[str, ...],
    ) -> str | None:
        """Audit a refused request. Nothing was forwarded, so a store outage here does not
        turn the refusal into a 503: the caller still learns why, and the gap is logged."""
        try:
            return await self.audit.record(
                intent_for(engine, req, action, changed=changed),
                Outcome(outcome=AuditOutcome.REJECTED, problem_code=code),
            )
        except (AuditUnavailable, InvalidAuditInput):  # down, or a value it cannot hold
            log_event(log, "audit_rejection_unrecorded", system=req.system, code=code,
                      request_id=req.request_id)
            return None

    # -- GET ---------------------------------------------------------------------------

    async def read(self, admitted: Admitted) -> ReadResult:
        engine = self.engines()
        req, connector = admitted.request, admitted.connector
        # A read shows personal data (masked or not): it names why (Art. 5(1)(b)).
        if req.purpose is None and self.read_purpose_required:
            raise PolicyDenied(
                Problem.PURPOSE_REQUIRED, "a read of a customer names its X-Purpose"
            )
        if req.purpose is not None and parse(Purpose, req.purpose) is None:
            raise PolicyDenied(
                Problem.PURPOSE_NOT_ALLOWED, f"purpose must be one of {', '.join(Purpose)}"
            )
        record = await connector.fetch(req.customer_id)
        audit_id = await self.audit.record(
            intent_for(engine, req, Action.READ), Outcome(outcome=AuditOutcome.APPLIED)
        )
        masked = engine.mask(req.system, record, req.principal.roles)
        self.metrics.masked(masked.counts)
        return ReadResult(
            customer=masked.record,
            etag=record_etag(record),
            policy_version=engine.policies[req.system].version,
            audit_id=audit_id,
        )

    # -- PATCH -------------------------------------------------------------------------

    async def update(
        self,
        admitted: Admitted,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        if_match: str | None = None,
    ) -> UpdateResult:
        engine = self.engines()
        req, connector = admitted.request, admitted.connector
        action = Action.DRY_RUN if dry_run else Action.UPDATE
        errors = engine.validate(req.system, patch)
        if errors:
            self.metrics.validation_errors(req.system, [e.code for e in errors])
            self.metrics.decision(req.system, Verdict.DENIED, ValidationFailed.code)
            audit_id = await self._record_rejection(
                engine, req, action, ValidationFailed.code, attempted(engine, req, patch)
            )
            raise with_audit(
                ValidationFailed(
                    f"{len(errors)} field(s) failed validation",
                    errors=[FieldProblem(e.path, e.code, e.message) for e in errors],
                ),
                audit_id,
            )

        # a write holding a lock (what the shutdown waits for), counted without the two
        # awaits of an async context manager
        self.writes.enter()
        try:
            async with self.audit.subject_lock(req.system, req.customer_id):
                try:
                    pre_image = await connector.fetch(req.customer_id)
                except UpstreamOutcomeUnknown as exc:
                    raise read_failed(exc) from None
                if if_match is not None and if_match.strip() != record_etag(pre_image):
                    audit_id = await self._record_rejection(
                        engine, req, action, PreconditionFailed.code,
                        attempted(engine, req, patch),
                    )
                    self.metrics.decision(req.system, Verdict.DENIED, PreconditionFailed.code)
                    raise with_audit(
                        PreconditionFailed("the record changed since the tag was issued"), audit_id
                    )

                decision = engine.decide(
                    req.system, pre_image, patch, req.principal, req.purpose
                )
                if not decision.allowed:
                    code = decision.problem or Problem.FORBIDDEN
                    self.metrics.decision(req.system, Verdict.DENIED, code)
                    audit_id = await self._record_rejection(
                        engine, req, action, code, attempted(engine, req, patch)
                    )
                    raise with_audit(
                        PolicyDenied(
                            code,
                            decision.detail,
                            errors=[
                                FieldProblem(e.path, e.code, e.message) for e in decision.errors
                            ],
                        ),
                        audit_id,
                    )

                if dry_run or not decision.changed:
                    # Nothing leaves the gateway: the decision itself is what gets audited.
                    audit_id = await self.audit.record(
                        intent_for(engine, req, action, decision),
                        Outcome(outcome=AuditOutcome.APPLIED),
                    )
                    verdict = Verdict.DRY_RUN if dry_run else Verdict.ALLOWED
                    self.metrics.decision(req.system, verdict, None)
                    shown = (
                        decision.merged
                        if decision.merged is not None
                        else merge_patch(pre_image, patch)
                    )
                    return self._answer(
                        engine, req, shown, decision, audit_id, applied=False, dry_run=dry_run
                    )

                body = decision.merged if connector.mode == "put" else dict(patch)
                assert body is not None  # a put policy always yields the merged object
                # The intent is queued first: the writer sends it to the store before the
                # edit-conflict re-read (where needed) is sent, which then runs while the
                # intent commits. A read sends nothing; the write waits for both.
                begun = self.audit.begin_queued(intent_for(engine, req, action, decision))
                reread = (
                    asyncio.ensure_future(connector.fetch(req.customer_id))
                    if self.conflict_check and connector.conflict_reread
                    else None
                )
                try:
                    intent_id = await begun
                except BaseException:
                    await discard(reread)
                    raise
                # Forward and its audit outcome are one unit: a client hanging up must not
                # leave a forward without its outcome.
                forward = asyncio.ensure_future(self._forward(
                    req, connector, pre_image, body, intent_id, decision.after, reread
                ))
                try:
                    landed = await asyncio.shield(forward)
                except asyncio.CancelledError:
                    # cancelled (a shutdown past its grace): the customer stays locked, and
                    # the change counted, until the forward has its outcome (an applied
                    # one is queued by the callback, whatever happens to this task)
                    forward.add_done_callback(self._applied_after_cancel(intent_id))
                    await asyncio.wait([forward])
                    if not forward.cancelled():
                        forward.exception()  # seen here; the caller is gone, the audit has it
                    raise
                # queued in the step that also answers (on SQLite nothing suspends until
                # the answer is written): the writer it wakes runs after the answer left
                await self._finish_applied(intent_id, landed)
                self.metrics.decision(req.system, Verdict.ALLOWED, None)
                return self._answer(
                    engine, req, landed.record, decision, intent_id, applied=True, dry_run=False
                )
        finally:
            self.writes.leave()

    async def _forward(
        self,
        req: Request,
        connector: Connector,
        pre_image: Mapping[str, Any],
        body: dict[str, Any],
        intent_id: str,
        expected: Mapping[str, Any],
        reread: asyncio.Future[dict[str, Any]] | None,
    ) -> Landed:
        """The forward; the outcome of one that failed or was refused (durable). One that
        landed comes back for its caller to queue its outcome (``_finish_applied``)."""
        if reread is not None:
            try:
                current = await reread
            except GatewayError as exc:
                # a read: nothing was written, whatever its answer
                failed = read_failed(exc) if isinstance(exc, UpstreamOutcomeUnknown) else exc
                await self._finish(
                    intent_id, AuditOutcome.UPSTREAM_FAILED, failed.code, None, None,
                    sent=False,
                )
                raise with_audit(failed, intent_id) from None
            if connector.version_tag(current) != connector.version_tag(pre_image):
                await self._finish(
                    intent_id, AuditOutcome.REJECTED, EditConflict.code, None, None,
                    sent=False,
                )
                self.metrics.decision(req.system, Verdict.DENIED, EditConflict.code)
                raise with_audit(
                    EditConflict("the record changed between read and write"), intent_id
                )
        started = time.perf_counter()
        try:
            result = await connector.apply(req.customer_id, body)
        except UpstreamOutcomeUnknown as exc:
            # Sent, no usable answer: never re-sent (docs/upstreams.md); a read tells
            # whether it landed. If it did not (yet), the outcome stays unknown: 504.
            landed = await read_back(connector, req.customer_id, expected)
            status = exc.upstream_status
            if landed is None:
                await self._finish(
                    intent_id, AuditOutcome.UNKNOWN, exc.code, status, elapsed_ms(started)
                )
                raise with_audit(exc, intent_id) from None
            return Landed(landed, exc.code, None, elapsed_ms(started))
        except (UpstreamError, CustomerNotFound) as exc:
            status = getattr(exc, "upstream_status", None)
            await self._finish(
                intent_id, AuditOutcome.UPSTREAM_FAILED, exc.code, status, elapsed_ms(started)
            )
            raise with_audit(exc, intent_id) from None
        return Landed(result, None, 200, elapsed_ms(started))

    async def _finish_applied(self, intent_id: str, landed: Landed) -> None:
        """Queue the ``applied`` outcome of a forward that landed (not waited for)."""
        await self._finish(
            intent_id, AuditOutcome.APPLIED, landed.code, landed.status, landed.latency_ms,
            durable=False,
        )  # fmt: skip

    def _applied_after_cancel(self, intent_id: str) -> Callable[[asyncio.Future[Landed]], None]:
        """A done callback for a forward whose caller was cancelled: a forward that landed
        still gets its applied outcome queued (a failed one recorded its own)."""

        def queue(forward: asyncio.Future[Landed]) -> None:
            if forward.cancelled() or forward.exception() is not None:
                return
            task = asyncio.ensure_future(self._finish_applied(intent_id, forward.result()))
            # its failure is logged by _finish, the intent left to the reconciler
            task.add_done_callback(lambda done: done.cancelled() or done.exception())

        return queue

    async def _finish(
        self,
        intent_id: str,
        outcome: AuditOutcome,
        code: Problem | None,
        status: int | None,
        latency_ms: float | None,
        *,
        durable: bool = True,
        sent: bool = True,
    ) -> None:
        """Record the outcome of a begun intent. Should that fail, the change may have
        happened and the audit log does not know: only a 504 may be answered (the
        reconciler closes the intent, re-reading the upstream, once the store is back).
        With ``sent=False`` (a refusal after the intent: the re-read failed or saw
        another change) nothing reached the upstream, so the answer is 503
        ``audit_unavailable`` instead.

        An ``applied`` outcome is written with ``durable=False``: the answer does not
        wait for its sync. Should it be lost (a crash before the next durable commit,
        a store failure after it was queued), the intent stays open and the reconciler
        re-reads the upstream, which shows the applied values: it closes the intent as
        ``applied`` (docs/audit.md "Durability of an outcome", docs/reliability.md).
        Every other outcome is durable before the answer."""
        try:
            await self.audit.finish(
                intent_id,
                Outcome(
                    outcome=outcome,
                    problem_code=code,
                    upstream_status=status,
                    upstream_latency_ms=latency_ms,
                ),
                durable=durable,
            )
        except Exception as exc:
            log_event(log, "audit_outcome_unrecorded", level=logging.WARNING,
                      error_type=type(exc).__name__, audit_id=intent_id)  # fmt: skip
            if not sent:
                # nothing reached the upstream: "nothing changed" (503), not the 504
                # that says the change may have landed; the reconciler closes the intent
                raise AuditUnavailable(
                    "the audit log could not record this refusal; nothing was changed"
                ) from None
            raise with_audit(
                UpstreamOutcomeUnknown(
                    "the audit log could not record the outcome of this change, so it is"
                    " unknown; it is reconciled from the upstream once the store is back"
                ),
                intent_id,
            ) from None

    def _answer(
        self,
        engine: PolicyEngine,
        req: Request,
        record: Mapping[str, Any],
        decision: Decision,
        audit_id: str | None,
        *,
        applied: bool,
        dry_run: bool,
    ) -> UpdateResult:
        masked = engine.mask(req.system, record, req.principal.roles)
        self.metrics.masked(masked.counts)
        return UpdateResult(
            applied=applied,
            dry_run=dry_run,
            changed=decision.changed,
            customer=masked.record,
            audit_id=audit_id,
            policy_version=engine.policies[req.system].version,
        )

