"""The audit review API (compliance officers) and the data-subject routes (Art. 15, 17).

Every route applies the principal's roles and its system scope (``service.access``):
lists cover only the systems in scope (in the query, so paging stays exact), a
``system`` filter outside it is 403, and an entry, a reveal, an export or an erasure
of another system is 403 ``forbidden`` - never naming that system.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from audit.errors import EntryNotFound, OutOfScope
from common.vocabulary import AuditOutcome, FieldCode, parse
from policies import Principal
from service.access import ACT_FOR_SUBJECT, REVIEW_AUDIT, authorize, scope
from service.errors import AuditEntryNotFound, FieldProblem, Forbidden, ValidationFailed
from service.idempotency import key_of, once
from service.keys import AUDIT_KEY, GATEWAY_KEY, METRICS_KEY, REQUEST_ID_KEY
from service.routes.common import (
    answer,
    audit_id,
    cursor_checked,
    customer_id,
    json_object,
    principal,
    query_cursor,
    query_id,
    query_text,
    reason,
)

routes = web.RouteTableDef()

MAX_LIMIT = 500


def _require(request: web.Request, roles: frozenset[str], system: str | None = None) -> Principal:
    who = principal(request)
    authorize(who, roles, system)
    return who


def _out_of_scope() -> Forbidden:
    # the same answer whatever lies behind the id: no system, no customer
    return Forbidden("this entry lies outside the principal's system scope")


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"{name} must be an ISO 8601 date-time",
            errors=[FieldProblem(name, FieldCode.INVALID_FORMAT, "expected ISO 8601")],
        ) from None


def query_limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            errors=[FieldProblem("limit", FieldCode.WRONG_TYPE, f"1 to {MAX_LIMIT}")],
        )
    return int(raw)


@routes.get("/v1/audit")
async def list_entries(request: web.Request) -> web.Response:
    q = request.query
    who = _require(request, REVIEW_AUDIT, q.get("system"))
    outcome = q.get("outcome")
    if outcome is not None and parse(AuditOutcome, outcome) is None:
        raise ValidationFailed(
            "unknown outcome",
            errors=[
                FieldProblem("outcome", FieldCode.NOT_IN_ENUM, f"one of {sorted(AuditOutcome)}")
            ],
        )
    with cursor_checked():
        page = await request.app[AUDIT_KEY].query(
            system=query_text(request, "system"),
            customer_id=query_id(request, "customer_id"),
            actor=query_text(request, "actor"),
            outcome=outcome,
            since=query_time(request, "since"),
            until=query_time(request, "until"),
            limit=query_limit(request),
            cursor=query_cursor(request),
            systems=scope(who),
        )
    return web.json_response({"entries": page.entries, "next_cursor": page.next_cursor})


@routes.get("/v1/audit/verify")
async def verify(request: web.Request) -> web.Response:
    who = _require(request, REVIEW_AUDIT)
    # the verdict is the whole chain's; a bad entry is named only within the scope
    report = await request.app[AUDIT_KEY].verify(systems=scope(who))
    request.app[METRICS_KEY].audit_verified(report.ok)
    return web.json_response(
        {
            "ok": report.ok,
            "entries": report.entries,
            "head": report.head,
            "first_bad": report.first_bad,
        }
    )


@routes.get("/v1/audit/{audit_id}")
async def get_entry(request: web.Request) -> web.Response:
    who = _require(request, REVIEW_AUDIT)
    try:
        entry = await request.app[AUDIT_KEY].get(audit_id(request), systems=scope(who))
    except EntryNotFound:
        raise AuditEntryNotFound("no audit entry with that id") from None
    except OutOfScope:
        raise _out_of_scope() from None
    return web.json_response(entry)


@routes.post("/v1/audit/{audit_id}/reveal")
async def reveal(request: web.Request) -> web.Response:
    who = _require(request, ACT_FOR_SUBJECT)
    entry_id = audit_id(request)
    why = reason(await json_object(request))
    try:
        entry, reveal_id = await request.app[AUDIT_KEY].reveal(
            entry_id,
            actor=who.name,
            roles=tuple(sorted(who.roles)),
            reason=why,
            request_id=request[REQUEST_ID_KEY],
            systems=scope(who),
        )
    except EntryNotFound:
        raise AuditEntryNotFound("no audit entry with that id") from None
    except OutOfScope:
        raise _out_of_scope() from None
    return answer(request, {"entry": entry, "reveal_audit_id": reveal_id}, audit_id=reveal_id)


def _subject(request: web.Request) -> tuple[Principal, str, str]:
    who = principal(request)
    system = request.match_info["system"]
    authorize(who, ACT_FOR_SUBJECT, system, known=request.app[GATEWAY_KEY].connectors)
    return who, system, customer_id(request)


@routes.get("/v1/subjects/{system}/{customer_id}/export")
async def export_subject(request: web.Request) -> web.Response:
    who, system, customer_id = _subject(request)
    entries, export_id = await request.app[AUDIT_KEY].export_subject(
        system,
        customer_id,
        actor=who.name,
        roles=tuple(sorted(who.roles)),
        request_id=request[REQUEST_ID_KEY],
    )
    body: dict[str, Any] = {
        "system": system,
        "customer_id": customer_id,
        "entries": entries,
        "export_audit_id": export_id,
    }
    return answer(request, body, audit_id=export_id)


@routes.post("/v1/subjects/{system}/{customer_id}/erase")
async def erase_subject(request: web.Request) -> web.StreamResponse:
    who, system, customer_id = _subject(request)
    key = key_of(request)  # 400 for a malformed Idempotency-Key, before the body
    body = await json_object(request)
    why = reason(body)

    async def run() -> web.Response:
        erase_id = await request.app[AUDIT_KEY].erase(
            system,
            customer_id,
            actor=who.name,
            roles=tuple(sorted(who.roles)),
            reason=why,
            request_id=request[REQUEST_ID_KEY],
        )
        return answer(
            request,
            {"system": system, "customer_id": customer_id, "erased": True, "audit_id": erase_id},
            audit_id=erase_id,
        )

    return await once(request, key, who.name, (system, customer_id), body, run)
