"""What every handler does first: who is asking, about whom, what did they send, why.

Everything here runs before anything is read, audited or forwarded, so that a value a
client can choose freely - an id in the path, a header, a query parameter, a JSON body -
either has a known, bounded shape or is refused with its problem (docs/api.md
"Identifiers" and "Problems").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any, Final, NoReturn

import orjson
from aiohttp import web

from audit.errors import InvalidAuditInput
from common.vocabulary import UNKNOWN_PURPOSE, FieldCode, Purpose, parse
from policies import Principal
from policies.controls import has_refused_character, refused_characters
from service.errors import (
    AuditEntryNotFound,
    BadRequest,
    CustomerNotFound,
    FieldProblem,
    MalformedRequest,
    NotAnObject,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.gateway_types import Request
from service.json_codec import has_long_digits, json_response
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

#: A customer id or an audit id: 1-128 ASCII letters, digits, ``.``, ``_``, ``-``, the
#: first a letter or a digit. Every real id of the four systems fits (decimal numbers,
#: UUIDs, alphanumerics); a NUL, a control character, a space, a non-ASCII letter or a
#: 6,000-character string does not, and never reaches the audit store or an upstream.
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: a free-text query filter (``actor``, ``system``, ``cursor``): at most this long
MAX_QUERY_CHARS: Final = 256
#: a reason may span lines; no other control character
_REASON_REFUSES: Final = refused_characters(("newline", "tab"))


def is_id(value: str) -> bool:
    """Whether ``value`` has the shape of a customer id or an audit id (:data:`ID_PATTERN`)."""
    return ID_PATTERN.fullmatch(value) is not None


def customer_id(request: web.Request) -> str:
    """The path's ``{customer_id}``; 404 ``customer_not_found`` when it cannot be an id."""
    value = request.match_info["customer_id"]
    if not is_id(value):
        raise CustomerNotFound("no customer has an id of this form")
    return value


def audit_id(request: web.Request) -> str:
    """The path's ``{audit_id}``; 404 ``audit_entry_not_found`` when it cannot be an id."""
    value = request.match_info["audit_id"]
    if not is_id(value):
        raise AuditEntryNotFound("no audit entry has an id of this form")
    return value


def query_id(request: web.Request, name: str) -> str | None:
    """An id-shaped query filter (``customer_id``); 422 when it cannot be an id."""
    value = request.query.get(name)
    if value is not None and not is_id(value):
        raise ValidationFailed(
            f"query parameter {name} is not an id",
            errors=[FieldProblem(name, FieldCode.INVALID_FORMAT, "1-128 of A-Z a-z 0-9 . _ -")],
        )
    return value


def query_text(request: web.Request, name: str) -> str | None:
    """A free-text query filter: bounded, no control character (422 otherwise)."""
    value = request.query.get(name)
    if value is not None and (len(value) > MAX_QUERY_CHARS or has_refused_character(value)):
        raise ValidationFailed(
            f"query parameter {name} is malformed",
            errors=[
                FieldProblem(
                    name,
                    FieldCode.INVALID_FORMAT,
                    f"at most {MAX_QUERY_CHARS} printable characters",
                )
            ],
        )
    return value


def query_cursor(request: web.Request) -> str | None:
    """The paging cursor; ``cursor=`` (empty) is no cursor: the first page."""
    return query_text(request, "cursor") or None


@contextlib.contextmanager
def cursor_checked() -> Iterator[None]:
    """Around a paged audit query whose other parameters were checked already: the
    ``InvalidAuditInput`` left can only be a cursor this API did not issue (422)."""
    try:
        yield
    except InvalidAuditInput:
        raise ValidationFailed(
            "the cursor is not one this API issued",
            errors=[FieldProblem("cursor", FieldCode.INVALID_FORMAT, "use next_cursor as given")],
        ) from None


def if_match(request: web.Request) -> str | None:
    """``If-Match``; empty (or only spaces) is no precondition, as if not sent."""
    value = request.headers.get("If-Match")
    return value if value is not None and value.strip() else None


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
    """The stated purpose: None when absent, one of the vocabulary, or the fixed marker
    :data:`~common.vocabulary.UNKNOWN_PURPOSE` for anything else - the caller's text is
    never passed on, so it can never be recorded (it may hold a name, a birth date)."""
    value = request.headers.get(PURPOSE_HEADER, "").strip()
    if not value:
        return None
    stated = parse(Purpose, value)
    return stated if stated is not None else UNKNOWN_PURPOSE


def gateway_request(request: web.Request, system: str) -> Request:
    """Who asks (401 first), about whom (404 for a malformed id), why."""
    who = principal(request)
    return Request(
        system=system,
        customer_id=customer_id(request),
        principal=who,
        purpose=purpose(request),
        request_id=request[REQUEST_ID_KEY],
    )


class _DuplicateKey(ValueError):
    """An object names the same member twice: which value counts is parser-dependent."""


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


#: beyond this a float no longer spells every integer (I-JSON, RFC 7493 2.2)
_WHOLE_LIMIT = 2**53


def _number(text: str) -> float | int:
    """A number with a fraction or an exponent; a whole one (``2.0``, ``1e3``) is the
    integer it equals, as JSON Schema reads it (an ``integer`` field takes it; what is
    forwarded is ``2``, never ``2.0``, which some upstream parsers refuse for an int)."""
    value = float(text)
    if value.is_integer() and abs(value) <= _WHOLE_LIMIT:
        return int(value)
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no member name twice in one object (at any depth);
    a whole number written with a fraction is that integer (:func:`_number`).

    RFC 8259 leaves duplicate names to the parser: this one would keep the last, an
    upstream's might keep the first - a check passed on one value, another forwarded.
    """
    fast = _parse_fast(raw)
    if fast is not _SLOW:
        return fast
    try:
        return json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_members,
                          parse_float=_number)
    except _DuplicateKey:
        raise BadRequest("the body is not valid JSON: duplicate keys in an object") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None


_SLOW: Final = object()


def _parse_fast(raw: bytes) -> Any:
    """:func:`parse_json`'s value read by orjson, or ``_SLOW`` when only ``json`` can
    tell: orjson refuses the text (``json`` then decides: it reads a lone surrogate, a
    BOM, NaN, and raises for the rest), it may hold an integer orjson reads as a float
    (19 digits in a row), or it may name a member twice - orjson keeps the last, so the
    members read are counted against the text's colons: outside strings every colon is
    one member, so as many members as colons means none was named twice."""
    if has_long_digits(raw):
        return _SLOW
    try:
        value = orjson.loads(raw)
        members = _settle(value)
    except (orjson.JSONDecodeError, RecursionError):
        return _SLOW
    if members != raw.count(b":"):
        return _SLOW  # a duplicate, or a colon within a string: json decides
    if type(value) is float:
        return _whole(value)
    return value


def _whole(value: float) -> float | int:
    """:func:`_number` of a float orjson read."""
    if value.is_integer() and abs(value) <= _WHOLE_LIMIT:
        return int(value)
    return value


def _settle(value: Any) -> int:
    """Turn each whole float within ``value`` into its integer, in place (as
    :func:`_number`); the number of object members within it."""
    pairs: Any
    if type(value) is dict:
        count, pairs = len(value), value.items()  # members replaced in place, none added
    elif type(value) is list:
        count, pairs = 0, enumerate(value)
    else:
        return 0
    for key, item in pairs:
        kind = type(item)
        if kind is float:
            value[key] = _whole(item)
        elif kind is dict or kind is list:
            count += _settle(item)
    return count


async def json_object(request: web.Request, *, media_type_required: bool = True) -> dict[str, Any]:
    """The body as a JSON object: media type, size limit, arrival in time, syntax, shape -
    in that order."""
    if media_type_required and request.content_type not in JSON_TYPES:
        raise UnsupportedMediaType(
            "send application/json or application/merge-patch+json"
        )
    settings = request.app[SETTINGS_KEY]
    limit = settings.body_limit_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    try:
        content = request.content
        if content.is_eof():  # all of it arrived (a small body, one packet): taken as it
            # is, without read()'s loop of awaits (issue 11); nothing reads it again
            raw = content.read_nowait()
        else:  # the whole body, however it trickles in, within the configured time
            async with asyncio.timeout(settings.body_timeout_seconds):
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes") from None
    except TimeoutError:
        raise RequestTimeout("the body did not arrive within the configured time") from None
    except (web.RequestPayloadError, ConnectionError):
        # bad chunk framing or compression after the head, or the body cut short
        raise MalformedRequest("the request body could not be read") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise NotAnObject("the body must be a JSON object")
    return data


def reason(body: dict[str, Any]) -> str:
    """The required free-text reason of a reveal or an erasure."""
    value = body.get("reason")
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            "a reason is required",
            errors=[FieldProblem("reason", FieldCode.REQUIRED, "give a non-empty reason")],
        )
    if len(value) > 1000:
        raise ValidationFailed(
            "the reason is too long",
            errors=[FieldProblem("reason", FieldCode.TOO_LONG, "at most 1000 characters")],
        )
    if _REASON_REFUSES.search(value) is not None:
        raise ValidationFailed(
            "the reason holds a control character",
            errors=[FieldProblem("reason", FieldCode.INVALID_FORMAT, "no control characters")],
        )
    return value.strip()


def flag(request: web.Request, name: str) -> bool:
    if not request.query_string:  # no query (nearly every request): nothing to parse
        return False
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
        errors=[FieldProblem(name, FieldCode.WRONG_TYPE, "expected true or false")],
    )


def answer(request: web.Request, body: Any, *, audit_id: str | None = None,
           status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    if audit_id:
        request[AUDIT_ID_KEY] = audit_id
    return json_response(body, status=status, headers=headers)
