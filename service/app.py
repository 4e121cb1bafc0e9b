"""The one wiring point: ``create_app(settings)``.

Each resource is owned by one cleanup context (startup and cleanup in one generator):
the policy engine, one connector (one ClientSession) per upstream, the audit log, and
the gateway that composes them. Nothing else connects parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from audit import AuditLog, AuditUnavailable
from audit.resolve import ChangeResolver
from common.vocabulary import AuditOutcome
from service import multiproc
from service.auth import Authenticator
from service.caller_limits import CallerLimiter
from service.edge import edge_middleware
from service.gateway import Gateway
from service.idempotency import idempotency_ctx
from service.keys import (
    AUDIT_KEY,
    AUTH_KEY,
    CALLER_LIMITER_KEY,
    CONNECTORS_KEY,
    GATEWAY_KEY,
    LIFECYCLE_KEY,
    METRICS_KEY,
    OPENAPI_KEY,
    POLICIES_KEY,
    SETTINGS_KEY,
)
from service.logs import log_event
from service.metrics import Metrics, metrics_handler
from service.openapi_gen import OpenApiCache
from service.reload import policies_ctx
from service.retention import retention_ctx
from service.routes import audit as audit_routes
from service.routes import changes, customers, health, record, review, systems, ui
from service.settings import Settings
from service.shutdown import Lifecycle
from service.upstreams import Connector, record_shows

log = logging.getLogger("gdpr_gateway.app")
#: how long after an unknown outcome the reconciler still tries to resolve it
RESOLVE_WINDOW_SECONDS = 86400.0



def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    migrate: bool = False,
) -> web.Application:
    """Build the gateway. ``migrate`` applies the audit schema on start (demo, tests)."""
    metrics = Metrics(
        registry if registry is not None else CollectorRegistry(), systems=settings.upstreams
    )
    app = web.Application(
        # lifecycle, request context, metrics and problem+json in one (service/edge.py)
        middlewares=[edge_middleware],
        client_max_size=settings.body_limit_bytes,
    )
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = metrics
    app[LIFECYCLE_KEY] = Lifecycle()
    app[AUTH_KEY] = Authenticator(settings.tokens, settings.jwt, systems=settings.upstreams)
    app[CALLER_LIMITER_KEY] = CallerLimiter(
        settings.caller_rate_limit_per_second, settings.caller_rate_limit_burst
    )
    app[OPENAPI_KEY] = OpenApiCache()  # openapi.yaml + the policies in force

    app.cleanup_ctx.append(policies_ctx)
    app.cleanup_ctx.append(_upstreams_ctx)
    app.cleanup_ctx.append(_audit_ctx(migrate))
    app.cleanup_ctx.append(_gateway_ctx)
    app.cleanup_ctx.append(retention_ctx)  # periodic jobs: the expiry of sealed values
    # ... and of idempotency keys; a claim lasts as long as the longest write can
    app.cleanup_ctx.append(
        idempotency_ctx(forward_bound(settings) + settings.audit_lock_wait_seconds)
    )
    if multiproc.enabled():  # a worker of serve --workers N: its gauges to the shared files
        app.cleanup_ctx.append(multiproc.sampler(metrics.sample))

    app.add_routes(customers.routes)
    app.add_routes(systems.routes)
    app.add_routes(review.routes)  # before /v1/audit/{audit_id}
    app.add_routes(audit_routes.routes)
    app.add_routes(record.routes)
    app.add_routes(changes.routes)
    app.add_routes(health.routes)
    app.add_routes(ui.routes)
    app.router.add_get("/metrics", metrics_handler(metrics))
    # bounded route labels: every template known now, anything else counts as "other"
    metrics.init_routes(
        r.canonical for r in app.router.resources() if r.canonical != "/metrics"
    )
    # No on_response_prepare hook: the edge stamps Server, X-Request-Id and X-Audit-Id
    # on every answer before it is prepared (service.middleware.stamp_ids), and no
    # handler here streams. One that did would register stamp_context_headers.
    return app


async def _upstreams_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    metrics = app[METRICS_KEY]
    connectors: dict[str, Connector] = {}
    try:
        for system, upstream in settings.upstreams.items():
            connector = settings.systems.connect(upstream, observe=metrics.upstream)
            connector.breaker.on_change = _breaker_observer(metrics, system)
            metrics.breaker_state(system, connector.breaker.state)
            connectors[system] = connector
        app[CONNECTORS_KEY] = connectors
        yield
    finally:
        for connector in connectors.values():
            await connector.close()


def _breaker_observer(metrics: Metrics, system: str) -> Callable[[str], None]:
    def observe(state: str) -> None:
        metrics.breaker_state(system, state)

    return observe


def _audit_ctx(
    migrate: bool,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS_KEY]
        metrics = app[METRICS_KEY]
        audit_log = await AuditLog.open(
            settings.audit_url,
            master_key=settings.master_key_bytes(),
            signing_key=settings.signing_key_bytes(),
            checkpoint_every=settings.audit_checkpoint_every,
            checkpoint_seconds=settings.audit_checkpoint_seconds,
            on_batch=metrics.audit_batch,
            create=migrate,
            lock_wait_seconds=settings.audit_lock_wait_seconds,
            lock_connections=settings.audit_lock_connections,
            on_lock_timeout=metrics.audit_lock_timeout,
            key_period_days=settings.audit_key_period_days,
        )
        metrics.watch_audit_locks(audit_log.lock_use)
        resolver = _resolver(app[CONNECTORS_KEY])
        bound = reconcile_min_age(settings)
        # shared: other replicas (PostgreSQL) or other workers of this server may have
        # writes in flight
        shared = settings.audit_url.startswith("postgresql") or settings.workers > 1
        reconciler: asyncio.Task[None] | None = None
        try:
            # At start-up: this process has nothing in flight yet. On a shared PostgreSQL
            # other replicas may, so only intents older than any forward can be are closed.
            metrics.audit_store(True)  # it opened: it answered
            await _reconcile(audit_log, resolver, bound if shared else 0.0, metrics)
            reconciler = asyncio.create_task(
                _reconcile_forever(
                    audit_log, resolver, bound, settings.audit_reconcile_seconds, metrics,
                    _change_resolver(app[CONNECTORS_KEY]),
                ),
                name="audit-reconciler",
            )
            app[AUDIT_KEY] = audit_log
            yield
        finally:
            try:
                if reconciler is not None:
                    reconciler.cancel()
                    await asyncio.gather(reconciler, return_exceptions=True)
            finally:
                await audit_log.close()

    return audit_ctx


def reconcile_min_age(settings: Settings) -> float:
    """How old a dangling intent must be before a replica closes it: the setting, or by
    default the longest a forward can take (an older one belongs to a dead process)."""
    configured = settings.audit_reconcile_min_age_seconds
    return configured if configured is not None else forward_bound(settings)


def forward_bound(settings: Settings) -> float:
    """The longest one forward can take (conflict re-read, write, and the read-back of a
    write whose answer was lost; every attempt and backoff of the slowest upstream), with
    a margin: an intent older than this whose outcome is missing belongs to a process
    that died."""
    per_call = max(
        (u.timeout_seconds + u.backoff_max_seconds) * (u.max_retries + 1)
        for u in settings.upstreams.values()
    )
    return 3 * per_call + 30.0


async def _reconcile(
    audit_log: AuditLog,
    resolver: Callable[[str, str, Mapping[str, Any]], Awaitable[str]],
    min_age: float,
    metrics: Metrics,
    change_resolver: ChangeResolver | None = None,
    every: float = 60.0,
) -> None:
    closed = await audit_log.reconcile(resolver, min_age_seconds=min_age)
    metrics.intents_reconciled(closed)
    if closed:
        log_event(log, "audit_intents_reconciled", count=closed)
    if change_resolver is not None:
        # unknown outcomes: a re-read of the upstream, within a day, with doubling pauses;
        # "not applied" only once older than a write can take (min_age)
        resolved = await audit_log.resolve_unknowns(
            change_resolver, window_seconds=RESOLVE_WINDOW_SECONDS, pause_seconds=every,
            settle_seconds=min_age,
        )  # fmt: skip
        if resolved:
            log_event(log, "audit_unknowns_resolved", count=resolved)


async def _reconcile_forever(
    audit_log: AuditLog,
    resolver: Callable[[str, str, Mapping[str, Any]], Awaitable[str]],
    min_age: float,
    every: float,
    metrics: Metrics,
    change_resolver: ChangeResolver,
) -> None:
    """Close what a crashed process (this one earlier, or another replica) left open,
    and what this one could not record. No failure of one tick ends the loop."""
    while True:
        await asyncio.sleep(every)
        try:
            await _reconcile(audit_log, resolver, min_age, metrics, change_resolver, every)
        except AuditUnavailable:
            log_event(log, "audit_reconcile_skipped", reason="store_unavailable")
        except Exception as exc:  # the next tick tries again; the type only, no values
            log_event(
                log, "audit_reconcile_failed", level=logging.WARNING,
                error_type=type(exc).__name__,
            )  # fmt: skip


async def _current(
    connectors: Mapping[str, Connector], system: str, customer_id: str, after: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The upstream record a resolver compares with a change's values; ``None`` when
    there is nothing to compare (no values, an unknown system) or the read failed - any
    failure to look leaves the outcome unknown, as it was."""
    connector = connectors.get(system)
    if connector is None or not after:
        return None
    try:
        return await connector.fetch(customer_id)
    except Exception:
        return None


def _resolver(
    connectors: Mapping[str, Connector],
) -> Callable[[str, str, Mapping[str, Any]], Awaitable[str]]:
    """After a crash: re-read the upstream to learn whether a dangling write landed."""

    async def resolve(system: str, customer_id: str, after: Mapping[str, Any]) -> str:
        record = await _current(connectors, system, customer_id, after)
        landed = record is not None and record_shows(record, after)
        return AuditOutcome.APPLIED if landed else AuditOutcome.UNKNOWN

    return resolve


def _change_resolver(connectors: Mapping[str, Connector]) -> ChangeResolver:
    """Later: re-read the upstream to learn whether a change whose outcome is unknown
    landed (every changed value shows), did not (every value from before shows), or
    cannot be told (anything else: someone changed the record since, the read failed)."""

    async def resolve(
        system: str, customer_id: str, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> str:
        record = await _current(connectors, system, customer_id, after)
        if record is None:
            return AuditOutcome.UNKNOWN
        if record_shows(record, after):
            return AuditOutcome.APPLIED
        if len(before) == len(after) and record_shows(record, before):
            return AuditOutcome.NOT_APPLIED
        return AuditOutcome.UNKNOWN

    return resolve


async def _gateway_ctx(app: web.Application) -> AsyncIterator[None]:
    policies = app[POLICIES_KEY]
    app[GATEWAY_KEY] = gateway = Gateway(
        lambda: policies.engine,
        app[AUDIT_KEY],
        app[CONNECTORS_KEY],
        app[METRICS_KEY],
        conflict_check=app[SETTINGS_KEY].conflict_check,
        read_purpose_required=app[SETTINGS_KEY].upstream_read_purpose_required,
    )
    yield
    # before the audit log closes: every change under way gets its outcome
    await gateway.writes.wait_idle()
