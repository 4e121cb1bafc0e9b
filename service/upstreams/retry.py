"""The retry policy of every connector, in one place so that it can be reviewed: what a
failed attempt tells about the upstream's state (its :class:`Fate`), which methods an
attempt that ended so may be sent again (:data:`RETRY_TABLE`), and, per attempt, whether
to send again and after what delay (:func:`next_step`, pure: the call loop asks it once
per failed attempt and does what it says).

Each failed attempt has a fate:

* ``unsent``: the request provably never left - no connection could be made (refused,
  DNS, connect timeout, a wait for a free connection, or any failure before the pool
  handed the request to a connected transport: ``service.upstreams.client``). Retried
  for every method; when the retries run out the caller gets ``UpstreamUnreachable``
  (nothing changed).
* ``refused``: the upstream answered that it did nothing (503). A GET and a
  whole-object PUT are retried; a PATCH is not (kept conservative).
* ``rate_limited``: a 429. Waited for and retried for every method: the upstream did
  nothing. The wait is its ``Retry-After`` (else a backoff no shorter than the pacing
  interval); a wait longer than ``backoff_max_seconds`` is not waited for at all.
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

A call makes at most ``1 + max_retries`` attempts per kind of wait: failures and 429s
are counted apart, each with its own exponential backoff (base 0.1 s, doubled per retry,
equal jitter, capped at ``backoff_max_seconds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Fate(StrEnum):
    """What one failed attempt tells about the upstream's state (module docstring)."""

    UNSENT = "unsent"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"
    MAYBE_APPLIED = "maybe_applied"
    FAILED = "failed"


#: 5xx answers that say something about the request's fate; any other 5xx is final
STATUS_FATES: Mapping[int, Fate] = {
    503: Fate.REFUSED,  # "service unavailable": not taken
    502: Fate.MAYBE_APPLIED,  # an intermediary lost the origin's answer
    504: Fate.MAYBE_APPLIED,
}


#: a method set that holds every method
EVERY_METHOD: Final = "*"

#: which methods an attempt of each fate may be sent again for (module docstring)
RETRY_TABLE: Mapping[Fate, frozenset[str]] = MappingProxyType(
    {
        Fate.UNSENT: frozenset({EVERY_METHOD}),  # nothing reached the upstream
        # the same whole object again (PUT), but only if the first was not taken
        Fate.REFUSED: frozenset({"GET", "PUT"}),
        Fate.RATE_LIMITED: frozenset({EVERY_METHOD}),  # taken for nothing: come back later
        Fate.MAYBE_APPLIED: frozenset({"GET"}),  # a write may still land: never re-sent
        Fate.FAILED: frozenset(),
    }
)

BACKOFF_BASE_SECONDS: Final = 0.1


def may_retry(fate: Fate, method: str) -> bool:
    """The retry policy: may an attempt of ``method`` that ended so be sent again?"""
    methods = RETRY_TABLE[fate]
    return method in methods or EVERY_METHOD in methods


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One upstream's retry settings."""

    max_retries: int
    backoff_max_seconds: float

    def backoff(self, retries: int, jitter: float, floor: float = 0.0) -> float:
        """Exponential backoff with equal jitter (``jitter`` in [0, 1)), at least
        ``floor``, at most ``backoff_max_seconds``."""
        delay = BACKOFF_BASE_SECONDS * (2.0**retries) * (0.5 + jitter / 2)
        return min(self.backoff_max_seconds, max(floor, delay))


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after a failed attempt: send again after ``delay`` seconds, or stop.
    After a 429, ``delay`` is also set on a stop: the wait the upstream asked for (or the
    backoff), for the caller's ``Retry-After``."""

    retry: bool
    delay: float = 0.0


def next_step(
    policy: RetryPolicy,
    fate: Fate,
    method: str,
    retries: int,
    *,
    jitter: float,
    retry_after: float | None = None,
    floor: float = 0.0,
) -> Step:
    """Send again or stop, after an attempt of ``method`` that ended with ``fate``, when
    ``retries`` attempts of that kind (429s apart from failures) were sent again already.
    ``retry_after``: the 429's ``Retry-After`` in seconds; ``floor``: the pacing interval,
    the shortest wait after a 429; ``jitter`` in [0, 1)."""
    if fate is Fate.RATE_LIMITED:
        wait = retry_after if retry_after is not None else policy.backoff(retries, jitter, floor)
        return Step(retries < policy.max_retries and wait <= policy.backoff_max_seconds, wait)
    if may_retry(fate, method) and retries < policy.max_retries:
        return Step(True, policy.backoff(retries, jitter))
    return Step(False)
