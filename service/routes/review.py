"""The review page's own routes: one row per change, and the trend per day and system.

``GET /v1/audit/changes``: the audit log as rows of changes (an intent joined with its
outcome; a refusal, a read, a reveal, an export, an erasure, an expiry as one row each),
newest first or, with ``order=oldest`` (the subject view), oldest first; personal values
masked. ``GET /v1/audit/trends``: changes, refusals by code and reveals per day and
system over a range of days, counted from the generated query columns only
(:mod:`audit.review`). Both for auditors and privacy officers, within their system scope,
like the rest of the review API (``service.routes.audit``). They are registered before
``/v1/audit/{audit_id}``, which would otherwise take ``changes`` and ``trends`` for ids.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

from aiohttp import web

from audit.review import MAX_TREND_DAYS
from common.vocabulary import FieldCode
from service.access import REVIEW_AUDIT, authorize, scope
from service.errors import FieldProblem, ValidationFailed
from service.keys import AUDIT_KEY
from service.routes.audit import query_limit, query_time
from service.routes.common import (
    cursor_checked,
    principal,
    query_cursor,
    query_id,
    query_text,
)

routes = web.RouteTableDef()

ORDERS: Final = ("newest", "oldest")
#: the trend's range without ``since``/``until``: the last seven days, today included
DEFAULT_TREND_DAYS: Final = 7


def _order(request: web.Request) -> bool:
    """Whether oldest first."""
    order = request.query.get("order", "newest")
    if order not in ORDERS:
        raise ValidationFailed(
            "order is newest or oldest",
            errors=[FieldProblem("order", FieldCode.NOT_IN_ENUM, "one of newest, oldest")],
        )
    return order == "oldest"


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a date",
            errors=[FieldProblem(name, FieldCode.INVALID_FORMAT, "expected YYYY-MM-DD")],
        ) from None


@routes.get("/v1/audit/changes")
async def list_changes(request: web.Request) -> web.Response:
    q = request.query
    who = principal(request)
    authorize(who, REVIEW_AUDIT, q.get("system"))
    with cursor_checked():
        page = await request.app[AUDIT_KEY].changes(
            system=query_text(request, "system"),
            customer_id=query_id(request, "customer_id"),
            actor=query_text(request, "actor"),
            since=query_time(request, "since"),
            until=query_time(request, "until"),
            limit=query_limit(request),
            cursor=query_cursor(request),
            oldest_first=_order(request),
            systems=scope(who),
        )
    return web.json_response({"changes": page.changes, "next_cursor": page.next_cursor})


@routes.get("/v1/audit/trends")
async def trends(request: web.Request) -> web.Response:
    q = request.query
    who = principal(request)
    authorize(who, REVIEW_AUDIT, q.get("system"))
    system = query_text(request, "system")
    until = _day(request, "until") or datetime.now(UTC).date()
    since = _day(request, "since") or until - timedelta(days=DEFAULT_TREND_DAYS - 1)
    if since > until or (until - since).days + 1 > MAX_TREND_DAYS:
        raise ValidationFailed(
            f"the range is 1 to {MAX_TREND_DAYS} days, since not after until",
            errors=[FieldProblem("since", FieldCode.INVALID_FORMAT,
                                 f"at most {MAX_TREND_DAYS} days before until")],
        )  # fmt: skip
    systems = scope(who)
    if system is not None:  # authorize() checked it lies in the scope
        systems = frozenset({system})
    body = await request.app[AUDIT_KEY].trends(since, until, systems=systems)
    return web.json_response(body)
