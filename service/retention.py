"""The expiry job inside the gateway: every ``audit.expire_seconds`` (at start, then on),
destroy the keys of sealed values whose retention period ended (:mod:`audit.retention`),
an ``expire`` audit entry per subject.

Every replica runs the loop; the audit log's job lock lets one run at a time (the others
count a ``skipped`` run). A run that fails (the store down, anything) is logged by the
error's type and tried again at the next tick; it never ends the loop. The metrics say
what each run did (``gdpr_gateway_audit_expiry_runs_total{result}``,
``gdpr_gateway_audit_values_expired_total``) and how old the oldest value still readable
is (``gdpr_gateway_audit_oldest_sealed_value_age_seconds``): above the longest retention
plus a key period, the job is not running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from audit import AuditLog, AuditUnavailable
from service.background import running
from service.keys import AUDIT_KEY, METRICS_KEY, SETTINGS_KEY
from service.logs import log_event
from service.metrics import Metrics

log = logging.getLogger("gdpr_gateway.retention")


async def expire_once(audit_log: AuditLog, metrics: Metrics) -> None:
    """One run; its outcome goes to the metrics and (when it expired anything) the log."""
    try:
        report = await audit_log.expire()
    except AuditUnavailable:
        metrics.audit_expiry("failed")
        log_event(log, "audit_expiry_skipped", reason="store_unavailable")
        return
    except Exception as exc:  # the next tick tries again; the type only, no values
        metrics.audit_expiry("failed")
        log_event(log, "audit_expiry_failed", level=logging.WARNING,
                  error_type=type(exc).__name__)  # fmt: skip
        return
    metrics.audit_expiry(
        "ran" if report.ran else "skipped", report.values, report.oldest_sealed
    )
    if report.subjects:
        log_event(log, "audit_values_expired", subjects=report.subjects, keys=report.keys,
                  entries=report.entries, values=report.values)  # fmt: skip


async def _expire_forever(audit_log: AuditLog, metrics: Metrics, every: float) -> None:
    while True:
        await expire_once(audit_log, metrics)
        await asyncio.sleep(every)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the expiry loop while the app runs (none when
    ``audit.expire_seconds`` is 0)."""
    every = app[SETTINGS_KEY].audit_expire_seconds
    job = _expire_forever(app[AUDIT_KEY], app[METRICS_KEY], every) if every > 0 else None
    async with running(job, "audit-retention"):
        yield
