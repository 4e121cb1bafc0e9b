"""``GET /v1/changes/{audit_id}``: the state of one change (docs/api.md, "The status of a
change"), for the principal that made it and for auditors and privacy officers within
their system scope. Every 504 of a change points here (``Location``, ``Link``).

The state comes from the audit log: the entry ``audit_id`` (an intent, or a request
recorded in one entry - a refusal, a dry run) and the entries that name it as their
intent (its outcome; a later ``resolution`` of an ``unknown`` outcome).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from audit.errors import EntryNotFound, OutOfScope
from common.vocabulary import AuditOutcome, Phase
from policies import Principal
from service.access import REVIEW_AUDIT, scope
from service.errors import AuditEntryNotFound
from service.keys import AUDIT_KEY
from service.routes.common import audit_id, principal

routes = web.RouteTableDef()

#: an outcome as a state of the change
STATES: Final[Mapping[str, str]] = {
    AuditOutcome.APPLIED: "applied",
    AuditOutcome.REJECTED: "rejected",
    AuditOutcome.UPSTREAM_FAILED: "failed",
    AuditOutcome.UNKNOWN: "unknown",
}
#: the states a client stops polling at (``unknown`` until resolved)
SETTLED: Final = frozenset({"applied", "rejected", "failed"})


def _not_found() -> AuditEntryNotFound:
    # the same answer whether the id does not exist or is someone else's change
    return AuditEntryNotFound("no change with that id for this principal")


def change_state(
    entry: Mapping[str, Any], following: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The state of the change ``entry`` (its intent or its one entry) and its followers."""
    outcome: Mapping[str, Any] | None = entry if entry.get("phase") != Phase.INTENT else None
    resolution: Mapping[str, Any] | None = None
    for later in following:
        if later.get("phase") == Phase.OUTCOME and outcome is None:
            outcome = later
        elif later.get("phase") == Phase.RESOLUTION:
            resolution = later
    state = "pending" if outcome is None else STATES.get(str(outcome.get("outcome")), "unknown")
    body: dict[str, Any] = {
        "audit_id": entry["audit_id"],
        "system": entry["system"],
        "customer_id": entry["customer_id"],
        "action": entry["action"],
        "actor": entry["actor"],
        "requested_at": entry["time"],
        "state": state,
        "problem_code": outcome.get("problem_code") if outcome is not None else None,
        "outcome_at": outcome["time"] if outcome is not None else None,
        "outcome_audit_id": (
            outcome["audit_id"] if outcome is not None and outcome is not entry else None
        ),
        "resolution": None,
    }
    if resolution is not None:
        body["resolution"] = {
            "outcome": resolution.get("outcome"),
            "at": resolution["time"],
            "audit_id": resolution["audit_id"],
        }
    settled = state in SETTLED or resolution is not None
    body["settled"] = settled
    return body


def _may_see(who: Principal, entry: Mapping[str, Any]) -> bool:
    if entry.get("actor") == who.name and who.may_touch(str(entry.get("system"))):
        return True
    return bool(REVIEW_AUDIT & who.roles)


@routes.get("/v1/changes/{audit_id}")
async def get_change(request: web.Request) -> web.Response:
    who = principal(request)
    wanted = audit_id(request)
    audit_log = request.app[AUDIT_KEY]
    try:
        entry = await audit_log.get(wanted, systems=scope(who))
    except (EntryNotFound, OutOfScope):
        raise _not_found() from None
    if entry.get("phase") not in (Phase.INTENT, Phase.OUTCOME) or entry.get("intent_id"):
        raise _not_found()  # an outcome of an intent, a resolution: ask for the intent
    if not _may_see(who, entry):
        raise _not_found()
    following = await audit_log.following(wanted) if entry["phase"] == Phase.INTENT else []
    return web.json_response(change_state(entry, following))
