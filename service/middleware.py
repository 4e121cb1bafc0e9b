"""What the edge (``service/edge.py``, the one middleware every request passes) is made
of: the request id, errors as problem+json (:func:`problem_for`), ``Server``,
``X-Request-Id`` and ``X-Audit-Id`` on every answer (:func:`stamp_ids`), and the one
access line. :func:`problem_middleware` wraps a single handler the same way (the
idempotency wrapper uses it to keep the final answer). A handler that streams (prepares
its response itself) gets the headers from :func:`stamp_context_headers`, registered as an
``on_response_prepare`` hook; the gateway has no such handler, so its app registers none
(a hook costs a signal and a coroutine per answer, issue 11).
"""

from __future__ import annotations

import logging
import math
import re
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from audit.errors import AuditUnavailable, InvalidAuditInput, LockTimeout
from common.entropy import byte_stream
from common.vocabulary import Problem
from service.errors import FieldProblem, GatewayError, ValidationFailed
from service.json_codec import json_response
from service.keys import AUDIT_ID_KEY, REQUEST_ID_KEY, SETTINGS_KEY
from service.logs import emit, is_forbidden, log_event, scalar
from service.registry import SYSTEMS

PROBLEM_TYPE_BASE: Final = "https://gdpr-gateway.dev/problems/"
PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
REQUEST_ID_HEADER: Final = "X-Request-Id"
AUDIT_ID_HEADER: Final = "X-Audit-Id"
#: the ``Server`` header of every answer: no framework, no versions (aiohttp's default
#: would name Python's and aiohttp's)
SERVER_NAME: Final = "gdpr-gateway"
#: the status of one change: ``GET /v1/changes/{audit_id}`` (service/routes/changes.py)
CHANGES_PATH: Final = "/v1/changes/"
#: the problem code of this request's answer, for the access log (set by record_problem)
REQUEST_PROBLEM_KEY = web.RequestKey("problem_code", str)
#: the problem code a problem_response carries, for the access log
PROBLEM_CODE_KEY = web.ResponseKey("problem_code", str)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_access = logging.getLogger("gdpr_gateway.access")
_errors = logging.getLogger("gdpr_gateway.errors")

# aiohttp's own HTTP errors (routing, body size) -> problem code, title, generic detail.
HTTP_PROBLEMS: Final[Mapping[int, tuple[Problem, str, str]]] = {
    400: (Problem.BAD_REQUEST, "Bad request", "the request could not be read"),
    401: (Problem.UNAUTHENTICATED, "Unauthenticated", "authentication is required"),
    403: (Problem.FORBIDDEN, "Forbidden", "not allowed"),
    404: (Problem.NOT_FOUND, "Not found", "no resource at this path"),
    405: (Problem.METHOD_NOT_ALLOWED, "Method not allowed", "this method is not allowed here"),
    413: (
        Problem.PAYLOAD_TOO_LARGE,
        "Payload too large",
        "the request body is larger than the configured limit",
    ),
    415: (Problem.UNSUPPORTED_MEDIA_TYPE, "Unsupported media type", "unsupported media type"),
    429: (Problem.RATE_LIMITED, "Rate limited", "too many requests"),
}


def problem_response(
    code: str,
    status: int,
    title: str,
    detail: str,
    *,
    errors: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An ``application/problem+json`` answer (RFC 9457) in docs/api.md's shape."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = [{"field": e.field, "code": e.code, "message": e.message} for e in errors]
    response = json_response(
        body, status=status, headers=dict(headers or {}), content_type=PROBLEM_CONTENT_TYPE
    )
    response[PROBLEM_CODE_KEY] = code
    return response


def change_status_headers(audit_id: str) -> dict[str, str]:
    """``Location`` and ``Link`` of the status of the change ``audit_id`` (docs/api.md,
    "The status of a change"): on every 504 of a change."""
    url = CHANGES_PATH + audit_id
    return {"Location": url, "Link": f'<{url}>; rel="status"'}


def record_problem(request: web.Request, code: str) -> None:
    """Tell the access log the problem code of an answer built without problem_response."""
    request[REQUEST_PROBLEM_KEY] = code


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up (never 0 for a positive wait)."""
    return str(max(0, math.ceil(seconds)))


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes problem+json; nothing internal reaches the body."""
    try:
        return await handler(request)
    except Exception as exc:
        response = problem_for(request, exc)
        if response is None:
            raise
        return response


def problem_for(request: web.Request, exc: Exception) -> web.Response | None:
    """The problem+json answer for an error a handler raised; ``None`` for an
    ``HTTPException`` below 400 (a redirect is an answer, raised as it is)."""
    if isinstance(exc, GatewayError):
        headers: dict[str, str] = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = retry_after_header(exc.retry_after)
        audit_id = getattr(exc, "audit_id", None)
        if audit_id:
            request[AUDIT_ID_KEY] = audit_id
            if exc.status == 504:  # the outcome is unknown: where to learn it later
                headers.update(change_status_headers(audit_id))
        response = problem_response(
            exc.code, exc.status, exc.title, exc.detail, errors=exc.errors, headers=headers
        )
        if exc.close_connection:
            response.force_close()
        return response
    if isinstance(exc, AuditUnavailable):
        detail = (
            "the customer's lock could not be had in time; nothing was forwarded"
            if isinstance(exc, LockTimeout)
            else "the audit log cannot record this request now; nothing was forwarded"
        )
        return problem_response(
            Problem.AUDIT_UNAVAILABLE,
            503,
            "Audit unavailable",
            detail,
            headers={"Retry-After": retry_after_header(exc.retry_after)},
        )
    if isinstance(exc, InvalidAuditInput):  # a value the audit store cannot hold
        refused = ValidationFailed(
            "a value of this request cannot be recorded in the audit log; nothing was forwarded"
        )
        return problem_response(refused.code, refused.status, refused.title, refused.detail)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None  # redirects and the like are answers, not errors
        code, title, detail = HTTP_PROBLEMS.get(
            exc.status, (_slug(exc.reason), exc.reason, exc.reason)
        )
        keep = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return problem_response(code, exc.status, title, detail, headers=keep)
    # Type and frames only: the message may carry request data.
    log_event(
        _errors,
        "unhandled_exception",
        level=logging.ERROR,
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        stack=[f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(
            exc.__traceback__
        )],
        request_id=request.get(REQUEST_ID_KEY),
    )
    return problem_response(
        Problem.INTERNAL_ERROR, 500, "Internal error", "an unexpected error occurred"
    )


def _slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"


def request_id_for(offered: str | None) -> str:
    """The client's id when sane (1-128 of ``[A-Za-z0-9._-]``), else a new uuid4 hex."""
    if offered and _SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return new_request_id()


#: the request ids' random bytes, drawn from blocks: ``os.urandom`` per request was a
#: system call that gives the GIL away to the audit store's thread (issue 11)
_request_bytes: Final = byte_stream(16)


def new_request_id() -> str:
    """``uuid.uuid4().hex`` without building a ``UUID``: 16 random bytes with the
    version (4) and variant (RFC 4122) bits set, as hex."""
    raw = bytearray(_request_bytes())
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def stamp_ids(
    request: web.Request, response: web.StreamResponse | None, request_id: str
) -> None:
    """The fixed ``Server`` header, ``X-Request-Id`` and, when one was written,
    ``X-Audit-Id`` on an answer not yet sent (a redirect raised as an exception too: it
    is its own response). A handler that streams prepares its response before this runs:
    it needs :func:`stamp_context_headers` as its app's ``on_response_prepare`` hook."""
    if response is not None and not response.prepared:
        headers = response.headers
        headers["Server"] = SERVER_NAME
        headers[REQUEST_ID_HEADER] = request_id
        audit_id = request.get(AUDIT_ID_KEY)
        if audit_id:
            headers[AUDIT_ID_HEADER] = audit_id


async def stamp_context_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: the same headers on responses a handler streams itself
    (``await response.prepare(request)`` before the middleware sees them), and the fixed
    ``Server`` header on every answer.

    Register with ``app.on_response_prepare.append(stamp_context_headers)``.
    """
    response.headers["Server"] = SERVER_NAME
    request_id = request.get(REQUEST_ID_KEY)
    if request_id and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id
    audit_id = request.get(AUDIT_ID_KEY)
    if audit_id and AUDIT_ID_HEADER not in response.headers:
        response.headers[AUDIT_ID_HEADER] = audit_id


#: the access line's fields: ids, codes, a template, a duration (no name is redacted)
_ACCESS_FIELDS: Final = (
    "method", "route", "status", "duration_ms", "request_id", "problem_code", "system",
    "audit_id",
)  # fmt: skip
assert not any(map(is_forbidden, _ACCESS_FIELDS))
_UNSET: Final = object()


def access_line(
    request: web.Request,
    response: web.StreamResponse | None,
    started: float,
    *,
    cancelled: bool = False,
    route: str | None = None,
    system: object = _UNSET,
    seconds: float | None = None,
) -> None:
    """The one access line of a request. ``route`` (its template), ``system`` (a known
    system or None) and ``seconds`` (since ``started``) when the caller has them; a
    ``route`` and ``system`` given are shown as they are (``service.answer_facts`` has
    cut them as :func:`~service.logs.scalar` does)."""
    level = logging.INFO
    # 499: nginx's "client closed request" - no answer was sent
    status = response.status if response is not None else (499 if cancelled else 500)
    if status >= 500:
        level = logging.WARNING
    if not _access.isEnabledFor(level):
        return
    code = None
    if status >= 400:  # only an error has a problem code (none is looked up for the rest)
        code = response.get(PROBLEM_CODE_KEY) if response is not None else None
        if code is None:
            code = request.get(REQUEST_PROBLEM_KEY)
        if code is None and response is None:
            code = "client_closed" if cancelled else Problem.INTERNAL_ERROR
    if system is _UNSET:
        system = request.match_info.get("system")
        settings = request.app.get(SETTINGS_KEY)  # an app without settings: the shipped ones
        if system not in (settings.upstreams if settings is not None else SYSTEMS):
            system = None
        system = scalar(system)
    if seconds is None:
        seconds = time.perf_counter() - started
    method = request.method
    # the values are ids, codes, a template, numbers: scalar() only cuts an overlong one;
    # an INFO line waits to be written with the next ones (service/log_batch.py)
    emit(_access, level, "http_request", {
        "method": method if len(method) <= 16 else "other",
        "route": route if route is not None else scalar(route_template(request)),
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "request_id": scalar(request.get(REQUEST_ID_KEY)),
        "problem_code": scalar(code),
        "system": system,
        "audit_id": scalar(request.get(AUDIT_ID_KEY)),
    }, batched=level == logging.INFO)  # fmt: skip


def route_template(request: web.Request) -> str:
    """The matched route's template (``/v1/systems/{system}/...``) or ``unmatched``."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical
