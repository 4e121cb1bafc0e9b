"""Reading an upstream's answer: the body (bounded), its JSON, ``Retry-After``; and the
Basic ``Authorization`` value. No retry or error policy here (see ``transport``)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from service.errors import (
    CustomerNotFound,
    FieldProblem,
    GatewayError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from service.json_codec import loads_strict
from service.secret import Secret

#: the largest answer read from an upstream (a customer record is a few KiB)
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: statuses whose answer refuses the body: the upstream names fields
REJECTED_STATUSES = frozenset({400, 409, 422})


@dataclass(slots=True)
class Answer:
    """An upstream's answer: status, the parsed JSON body (``None`` when empty). Not
    ``frozen``: a frozen dataclass builds itself through ``object.__setattr__`` (~0.43
    against ~0.10 us, one per upstream call); nothing changes an answer once built."""

    status: int
    body: Any
    retry_after: float | None = None


class AnswerTooLarge(Exception):
    """The upstream's answer is over ``MAX_ANSWER_BYTES``; ``status`` its status."""

    def __init__(self, status: int | None = None) -> None:
        super().__init__("answer too large")
        self.status = status


def parse_json(raw: bytes) -> Any:
    """Strict JSON: ``ValueError`` for anything else, NaN and Infinity included
    (orjson where it reads the same values: ``service.json_codec``)."""
    return loads_strict(raw)


def basic_auth(username: Secret, password: Secret) -> str:
    """The ``Authorization`` value for HTTP Basic; ``ValueError`` (naming no value) when
    the user name cannot be sent."""
    try:
        return aiohttp.encode_basic_auth(username.reveal(), password.reveal())
    except ValueError:
        raise ValueError("a Basic auth user name must not contain ':'") from None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    system: str, answer: Answer, problems: Sequence[FieldProblem]
) -> GatewayError:
    """The generic domain error for an error answer (status >= 400); ``problems`` are
    the fields a rejection names. Messages name the system, never a value."""
    status = answer.status
    if status == 404:
        return CustomerNotFound(f"{system}: customer not found upstream")
    if status in (401, 403):
        return UpstreamAuthFailed(
            f"{system}: upstream refused the gateway's credentials", upstream_status=status
        )
    if status in REJECTED_STATUSES:
        return UpstreamRejected(
            f"{system}: upstream rejected the change", upstream_status=status, errors=problems
        )
    if status == 429:
        return UpstreamRateLimited(
            f"{system}: upstream rate limit", upstream_status=429, retry_after=answer.retry_after
        )
    if status >= 500:
        return UpstreamError(f"{system}: upstream failed", upstream_status=status)
    return UpstreamError(f"{system}: unexpected upstream answer", upstream_status=status)
