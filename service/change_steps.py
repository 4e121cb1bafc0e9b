"""The small steps of the path of one change that need no gateway state: the record's
entity tag, a read-back after a write with no usable answer, and how a failure is
turned into the answer the contract names, what the audit log records of it
(``service.gateway`` uses them)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from audit import Intent
from audit.types import SEALED_SENSITIVITIES
from common.canonical import canonical_json
from common.vocabulary import Action
from policies import Decision, PolicyEngine
from service.errors import GatewayError, UpstreamError, UpstreamOutcomeUnknown
from service.gateway_types import Request
from service.upstreams import Connector, record_shows


def record_etag(record: Mapping[str, Any]) -> str:
    """The ETag of an upstream record as the gateway read it (before masking)."""
    canonical = canonical_json(record, allow_nan=True)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


async def read_back(
    connector: Connector, customer_id: str, expected: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The record, if a read shows every changed path with its new value; else None."""
    try:
        record = await connector.fetch(customer_id)
    except GatewayError:
        return None
    return record if record_shows(record, expected) else None


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def read_failed(exc: UpstreamOutcomeUnknown) -> UpstreamError:
    """A read before the write went unanswered: nothing was written, so the answer is
    502 ("nothing changed"), never the 504 that means "the change may have landed"."""
    return UpstreamError(
        f"{exc.detail}; nothing was written", upstream_status=exc.upstream_status
    )


async def discard(task: asyncio.Future[Any] | None) -> None:
    """Cancel a read no longer needed and wait for it (its failure, if any, unseen)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def with_audit(exc: GatewayError, audit_id: str | None) -> GatewayError:
    """Attach the audit id of the entry that records this refusal (X-Audit-Id)."""
    exc.audit_id = audit_id
    return exc


def attempted(engine: PolicyEngine, req: Request, patch: Mapping[str, Any]) -> tuple[str, ...]:
    """What a refusal records of a patch: the fields it tried to change. A member name
    the policy does not know is the caller's free text (it may be anything): left out.
    (Worked out only for a refusal: a change records its decision's paths.)"""
    fields = engine.policies[req.system].fields
    return tuple(sorted(name for name in patch if name in fields))


def intent_for(
    engine: PolicyEngine,
    req: Request,
    action: Action,
    decision: Decision | None = None,
    changed: tuple[str, ...] = (),
) -> Intent:
    """What the audit log records of a change (or a refusal: ``changed``, no decision)."""
    policy = engine.policies[req.system]
    protected = dict(decision.protection) if decision is not None else {}
    return Intent(
        actor=req.principal.name,
        roles=tuple(sorted(req.principal.roles)),
        system=req.system,
        customer_id=req.customer_id,
        purpose=req.purpose,
        request_id=req.request_id,
        action=action,
        changed=decision.changed if decision is not None else changed,
        before=dict(decision.before) if decision is not None else {},
        after=dict(decision.after) if decision is not None else {},
        protected=protected,
        policy_version=policy.version,
        # how long the audit log keeps the sealed values (audit.retention)
        retention_days=policy.retention_days(
            path for path, level in protected.items() if level in SEALED_SENSITIVITIES
        ),
    )
