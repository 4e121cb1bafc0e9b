"""What every handler does first: who is asking, what did they send, why."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from aiohttp import web

from policies import Principal
from service.errors import (
    BadRequest,
    FieldProblem,
    NotAnObject,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.gateway import Request
from service.keys import (
    AUDIT_ID_KEY,
    AUTH_KEY,
    CALLER_LIMITER_KEY,
    PRINCIPAL_KEY,
    REQUEST_ID_KEY,
    SETTINGS_KEY,
)

JSON_TYPES = frozenset({"application/json", "application/merge-patch+json"})
PURPOSE_HEADER = "X-Purpose"


def principal(request: web.Request) -> Principal:
    """Authenticate once per request (401 on failure), count it against the caller's
    rate limit (429), and remember the principal."""
    found = request.get(PRINCIPAL_KEY)
    if found is None:
        found = request.app[AUTH_KEY].authenticate(request.headers.get("Authorization"))
        request.app[CALLER_LIMITER_KEY].check(found.name)
        request[PRINCIPAL_KEY] = found
    return found


def purpose(request: web.Request) -> str | None:
    value = request.headers.get(PURPOSE_HEADER, "").strip()
    return value or None


def gateway_request(request: web.Request, system: str, customer_id: str) -> Request:
    return Request(
        system=system,
        customer_id=customer_id,
        principal=principal(request),
        purpose=purpose(request),
        request_id=request[REQUEST_ID_KEY],
    )


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


async def json_object(request: web.Request, *, media_type_required: bool = True) -> dict[str, Any]:
    """The body as a JSON object: media type, size limit, syntax, shape - in that order."""
    if media_type_required and request.content_type not in JSON_TYPES:
        raise UnsupportedMediaType(
            "send application/json or application/merge-patch+json"
        )
    limit = request.app[SETTINGS_KEY].body_limit_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise NotAnObject("the body must be a JSON object")
    return data


def reason(body: dict[str, Any]) -> str:
    """The required free-text reason of a reveal or an erasure."""
    value = body.get("reason")
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            "a reason is required",
            errors=[FieldProblem("reason", "required", "give a non-empty reason")],
        )
    if len(value) > 1000:
        raise ValidationFailed(
            "the reason is too long",
            errors=[FieldProblem("reason", "too_long", "at most 1000 characters")],
        )
    return value.strip()


def flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValidationFailed(
        f"query parameter {name} must be true or false",
        errors=[FieldProblem(name, "wrong_type", "expected true or false")],
    )


def answer(request: web.Request, body: Any, *, audit_id: str | None = None,
           status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    if audit_id:
        request[AUDIT_ID_KEY] = audit_id
    return web.json_response(body, status=status, headers=headers)
