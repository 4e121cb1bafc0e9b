"""The bodies of the entries the log writes, from what the gateway hands it: an intent's
(and its outcome's), and an admin entry's (reveal, export, erase); and the intent an
open entry stood for, read back for its outcome or its reconciliation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from audit.entries import base_body, body_of, check_key
from audit.errors import InvalidAuditInput
from audit.ids import uuid7
from audit.types import Intent, Outcome
from common.vocabulary import AuditOutcome

_APPLIED: Final = Outcome(AuditOutcome.APPLIED)


def intent_body(
    audit_id: str,
    intent: Intent,
    phase: str,
    outcome: Outcome | None,
    intent_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An entry on ``intent``: its ``intent`` phase, or an ``outcome`` (of ``intent_id``);
    ``before`` and ``after``: its values in clear (none by default), taken as they are."""
    return body_of(
        audit_id, intent.actor, intent.roles, intent.system, intent.customer_id,
        intent.purpose, intent.request_id, intent.action, phase, outcome, intent_id,
        intent.changed, {} if before is None else before, {} if after is None else after,
        intent.policy_version, None, None,
    )  # fmt: skip


def admin_body(
    action: str,
    system: str,
    customer_id: str,
    *,
    actor: str,
    roles: tuple[str, ...],
    request_id: str,
    reason: str | None = None,
    target_id: str | None = None,
) -> dict[str, Any]:
    """An admin entry (reveal, export, erase) on one subject, applied as it is written."""
    for value, what in (
        (system, "system"),
        (customer_id, "customer_id"),
        (actor, "actor"),
        (request_id, "request_id"),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidAuditInput(f"{what} must be a non-empty string")
        check_key(value, what)
    return base_body(
        uuid7(),
        actor=actor,
        roles=roles,
        system=system,
        customer_id=customer_id,
        purpose=None,
        request_id=request_id,
        action=action,
        phase="outcome",
        outcome=_APPLIED,
        reason=reason,
        target_id=target_id,
    )


def intent_from_entry(entry: Mapping[str, Any]) -> Intent:
    """The intent a stored (masked) intent entry records, without its values."""
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
