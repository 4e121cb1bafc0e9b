"""One HTTP exchange with an upstream, and the fate of an attempt that failed.

:func:`exchange` sends one request and reads the whole answer (bounded). A transport
failure or a 2xx answer that cannot be read raises :class:`AttemptFailed`, carrying the
domain error it would become and its :class:`~service.upstreams.retry.Fate`; the call
loop (:mod:`service.upstreams.transport`) asks the retry policy what to do with it.

Whether the request may have reached the upstream is told by the pool
(:mod:`service.upstreams.client`): it marks the attempt sent when the request bytes are
handed to a connected transport; before that (connect refused or timed out, a wait for
a free connection) provably nothing was sent. Each attempt is observed (``report(method,
status, seconds)``) here: the status counts only once the whole answer is in - an answer
cut short or too large is reported without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.errors import (
    GatewayError,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from service.upstreams.answers import (
    Answer,
    AnswerTooLarge,
    parse_json,
    parse_retry_after,
)
from service.upstreams.client import Pool, Sent
from service.upstreams.retry import Fate

#: (method, status once the whole answer is in or None, seconds)
Report = Callable[[str, int | None, float], None]


class AttemptFailed(Exception):
    """One failed attempt, carrying the domain error it would become, its fate, what
    happened (for the log line: a kind or a status, never a value) and, for a 429, the
    upstream's ``Retry-After``."""

    def __init__(
        self,
        error: GatewayError,
        fate: Fate,
        *,
        cause: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error.detail)
        self.error = error
        self.fate = fate
        self.cause = cause or f"failed ({type(error).__name__})"
        self.retry_after = retry_after


async def exchange(
    pool: Pool,
    system: str,
    method: str,
    target: str,
    body: bytes | None,
    content_type: str | None,
    report: Report,
) -> Answer:
    """One HTTP exchange: ``target`` the request target (an absolute path and its
    query, :func:`~service.upstreams.transport.request_target`), ``body``
    already encoded, of ``content_type`` (the pool adds its default headers). Raises
    :class:`AttemptFailed` (with the attempt's fate) for a transport failure or a 2xx
    answer that cannot be read."""
    state = Sent()
    status: int | None = None
    answered: int | None = None
    started = time.perf_counter()
    try:
        # Redirects are not followed: the credentials go to the configured host only.
        reply = await pool.request(method, target, body, content_type, state)
        raw = reply.body
        retry_after = None if reply.retry_after is None else parse_retry_after(reply.retry_after)
        status = reply.status  # only once the whole answer is in
    except AnswerTooLarge as exc:
        answered = exc.status
        too_large = "answer from the upstream is too large"
        if method == "GET" or (answered is not None and 200 <= answered < 300):
            raise lost(system, method, too_large, answered) from None
        raise AttemptFailed(UpstreamError(f"{system}: {too_large}"), Fate.FAILED) from None
    except (TimeoutError, OSError) as exc:
        if not state.sent:
            # No request line reached a connection: provably nothing was sent.
            timed_out = isinstance(exc, TimeoutError)
            raise AttemptFailed(
                UpstreamUnreachable(
                    f"{system}: could not connect to the upstream"
                    + (" in time" if timed_out else "") + "; nothing was sent"
                ),
                Fate.UNSENT,
            ) from None
        if isinstance(exc, TimeoutError):
            outcome = "" if method == "GET" else "; outcome unknown"
            raise AttemptFailed(
                UpstreamTimeout(f"{system}: upstream did not answer in time{outcome}"),
                Fate.MAYBE_APPLIED,
            ) from None
        raise lost(system, method, "connection to the upstream failed", answered) from None
    finally:
        report(method, status, time.perf_counter() - started)
    parsed: Any = None
    if raw and not raw.isspace():  # not raw.strip(): a copy of the body
        try:
            parsed = parse_json(raw)
        except ValueError:
            if 200 <= status < 300:
                raise lost(system, method, "malformed answer from the upstream", status) from None
            parsed = None  # an error page that is not JSON: the status says enough
    return Answer(status, parsed, retry_after)


def lost(system: str, method: str, what: str, status: int | None) -> AttemptFailed:
    """The request was sent and its answer is lost or unreadable: a GET may be sent
    again; for a write the outcome is unknown."""
    if method == "GET":
        return AttemptFailed(
            UpstreamError(f"{system}: {what}", upstream_status=status),
            Fate.MAYBE_APPLIED,
        )
    return AttemptFailed(
        UpstreamOutcomeUnknown(
            f"{system}: {what} after the request was sent; outcome unknown",
            upstream_status=status,
        ),
        Fate.MAYBE_APPLIED,
    )
