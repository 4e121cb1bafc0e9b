"""The retry policy of every connector, in one place so that it can be reviewed: what a
failed attempt tells about the upstream's state (its :class:`Fate`), and whether an
attempt of a method that ended so may be sent again (:func:`may_retry`, pure).

Each failed attempt has a fate:

* ``unsent``: the request provably never left - no connection could be made (refused,
  DNS, connect timeout, or any failure before aiohttp handed the request line to a
  connection, seen with a ``TraceConfig`` hook). Retried for every method; when the
  retries run out the caller gets ``UpstreamUnreachable`` (nothing changed).
* ``refused``: the upstream answered that it did nothing (503). A GET and a
  whole-object PUT are retried; a PATCH is not (kept conservative). A 429 is handled
  apart: waited for and retried for every method.
* ``maybe_applied``: the request was handed to the connection and no usable answer came
  back - a timeout or reset after sending, an answer cut short or not JSON, a 2xx too
  large to read, a proxy's 502 or 504. A GET is retried. A write is NOT: a real
  upstream does not drop a request whose client went away, so the first PUT may still
  land, and a re-sent whole object (merged from a pre-image that may be stale by then)
  would overwrite any change made in between. The write raises
  ``UpstreamOutcomeUnknown`` (``UpstreamTimeout`` for a timeout), and the gateway reads
  the record back to tell whether it landed.
* ``failed``: an error answer that is final (500 - TimeLog's "could not be updated" -,
  4xx): not retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import aiohttp


class Fate(StrEnum):
    """What one failed attempt tells about the upstream's state (module docstring)."""

    UNSENT = "unsent"
    REFUSED = "refused"
    MAYBE_APPLIED = "maybe_applied"
    FAILED = "failed"


#: 5xx answers that say something about the request's fate; any other 5xx is final
STATUS_FATES: Mapping[int, Fate] = {
    503: Fate.REFUSED,  # "service unavailable": not taken
    502: Fate.MAYBE_APPLIED,  # an intermediary lost the origin's answer
    504: Fate.MAYBE_APPLIED,
}


def may_retry(fate: Fate, method: str) -> bool:
    """The retry policy: may an attempt of ``method`` that ended so be sent again?"""
    if fate is Fate.UNSENT:
        return True
    if method == "GET":
        return fate is not Fate.FAILED
    if method == "PUT":  # the same whole object again, but only if the first was not taken
        return fate is Fate.REFUSED
    return False


class Attempt:
    """Per attempt: has the request been handed to a connection yet? (``sent`` is set by
    the session's :func:`sent_tracing` hook; pass the instance as ``trace_request_ctx``.)"""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


def sent_tracing() -> aiohttp.TraceConfig:
    """The ``TraceConfig`` that marks an :class:`Attempt` sent."""
    tracing = aiohttp.TraceConfig()
    tracing.on_request_headers_sent.append(_mark_sent)
    return tracing


async def _mark_sent(_session: Any, context: SimpleNamespace, _params: Any) -> None:
    """``on_request_headers_sent``: a connection is up and the request line is handed to
    it; from here on the request may reach the upstream."""
    state = context.trace_request_ctx
    if isinstance(state, Attempt):
        state.sent = True
