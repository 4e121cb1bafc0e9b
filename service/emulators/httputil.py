"""Small request helpers shared by the emulators."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from aiohttp import web

_NO_BODY = object()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented credential."""
    return hmac.compare_digest(given.encode(), expected.encode())


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(user, password) from ``Authorization: Basic ...``, or ``None``."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def basic_ok(request: web.Request, user: str, password: str) -> bool:
    given = basic_credentials(request)
    return (
        given is not None
        and same_secret(given[0], user)
        and same_secret(given[1], password)
    )


class BodyError(ValueError):
    """The request body is missing or not JSON."""


async def json_body(request: web.Request) -> Any:
    """The decoded JSON body; ``BodyError`` when it is empty or not JSON."""
    raw = await request.read()
    if not raw.strip():
        raise BodyError("empty body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BodyError("body is not valid JSON") from None


def int_id(text: str) -> int | None:
    """A path id as an int, or ``None`` when it is not a plain decimal integer."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
