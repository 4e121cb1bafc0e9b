"""Resolving ``unknown`` outcomes: a change sent upstream whose answer was lost and whose
read-back did not show it (504 ``upstream_timeout``). Later, a re-read of the upstream
record is compared against the intent's values: every changed path shows the value the
change wrote - ``applied``; every changed path still shows the value from before -
``not_applied``; anything else (someone changed it since, the read failed, the values
were erased) - still unknown, tried again later.

A resolution is an entry of its own, phase ``resolution``, naming the intent in
``intent_id`` with the outcome learnt; the ``unknown`` outcome entry stays as it was (the
chain is append-only). Each intent is tried a bounded number of times with a doubling
pause (:data:`MAX_ATTEMPTS`, from one reconcile tick up), and only within
``window_seconds`` of its outcome; ``not_applied`` only once the outcome is older
than a write can take (``settle_seconds``: the reconciler's minimum age), since a
write the upstream still processes may land after the first re-read. One process at a
time resolves (the job lock :data:`RESOLVE_LOCK`), and a resolution is written only
while none exists, so every intent has at most one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from audit.backend import Backend
from audit.batch import Pending
from audit.bodies import intent_body, intent_from_entry
from audit.entries import ERASED, UNREADABLE, parse_iso, render
from audit.errors import EntryNotFound
from audit.ids import uuid7
from audit.reader import Reader
from audit.types import Outcome
from common.vocabulary import AuditOutcome, Phase

log = logging.getLogger(__name__)

#: (system, customer id, values before, values after) -> applied | not_applied | unknown
ChangeResolver = Callable[[str, str, Mapping[str, Any], Mapping[str, Any]], Awaitable[str]]
Append = Callable[[Pending], Awaitable[str]]

RESOLVE_LOCK: Final = 0x6A7D_17A0_5E50
MAX_ATTEMPTS: Final = 8
BATCH: Final = 100
RESOLVED: Final = frozenset({AuditOutcome.APPLIED, AuditOutcome.NOT_APPLIED})
_UNRESOLVED = (
    "SELECT e.seq, e.body, e.prev_hash, e.hash FROM audit_entry e"
    " WHERE e.outcome = 'unknown' AND e.phase = 'outcome' AND e.intent_id IS NOT NULL"
    " AND e.time >= ? AND NOT EXISTS (SELECT 1 FROM audit_entry r"
    " WHERE r.intent_id = e.intent_id AND r.phase = 'resolution')"
    " ORDER BY e.seq LIMIT ?"
)
_RESOLVED_ALREADY = "SELECT 1 FROM audit_entry WHERE intent_id = ? AND phase = 'resolution'"
_REASONS: Final = {
    AuditOutcome.APPLIED: "resolved: a re-read of the upstream shows every changed value",
    AuditOutcome.NOT_APPLIED: "resolved: a re-read of the upstream shows the values before",
}


@dataclass
class Attempts:
    """This process's tries per intent: how many, and when the next may be."""

    tries: dict[str, tuple[int, float]] = field(default_factory=dict)

    def due(self, intent_id: str, now: float) -> bool:
        count, next_at = self.tries.get(intent_id, (0, 0.0))
        return count < MAX_ATTEMPTS and now >= next_at

    def failed(self, intent_id: str, now: float, pause: float) -> None:
        count = self.tries.get(intent_id, (0, 0.0))[0] + 1
        self.tries[intent_id] = (count, now + pause * (2 ** (count - 1)))


async def resolve_unknowns(
    backend: Backend,
    reader: Reader,
    append: Append,
    resolver: ChangeResolver,
    attempts: Attempts,
    *,
    window_seconds: float,
    pause_seconds: float,
    settle_seconds: float = 0.0,
) -> int:
    """Try to resolve the unknown outcomes that are due; how many were resolved.
    ``not_applied`` is concluded only once the outcome is ``settle_seconds`` old (the
    longest a write can still be under way upstream); ``applied`` at any time."""
    async with backend.job_lock(RESOLVE_LOCK) as held:
        if not held:
            return 0
        since = (datetime.now(UTC) - timedelta(seconds=window_seconds)).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
        rows = await backend.fetchall(_UNRESOLVED, [since, BATCH])
        resolved = 0
        for row in rows:
            outcome = render(int(row[0]), row[1], row[2], row[3])
            intent_id = str(outcome["intent_id"])
            now = time.monotonic()
            if not attempts.due(intent_id, now):
                continue
            result = await _learn(reader, resolver, intent_id)
            if result == AuditOutcome.NOT_APPLIED and _age(outcome) < settle_seconds:
                result = AuditOutcome.UNKNOWN  # it may still land: look again later
            if result not in RESOLVED:
                attempts.failed(intent_id, now, pause_seconds)
                continue
            if await backend.fetchall(_RESOLVED_ALREADY, [intent_id]):
                continue  # written meanwhile (by a process before the lock was had)
            await append(_resolution(outcome, intent_id, result))
            attempts.tries.pop(intent_id, None)
            resolved += 1
        return resolved


def _age(entry: Mapping[str, Any]) -> float:
    return time.time() - parse_iso(str(entry["time"])).timestamp()


async def _learn(reader: Reader, resolver: ChangeResolver, intent_id: str) -> str:
    try:
        intent = await reader.in_clear(*await reader.row(intent_id, None))
    except EntryNotFound:
        return AuditOutcome.UNKNOWN
    unreadable = (ERASED, UNREADABLE)  # not values the upstream could hold
    before = {k: v for k, v in intent["before"].items() if v not in unreadable}
    after = {k: v for k, v in intent["after"].items() if v not in unreadable}
    if len(after) != len(intent["after"]) or not after:
        return AuditOutcome.UNKNOWN  # erased meanwhile: nothing left to compare
    try:
        return await resolver(intent["system"], intent["customer_id"], before, after)
    except Exception as exc:  # a failure to look leaves it unknown; tried again later
        log.warning("audit resolve: resolver failed for %s (%s)", intent_id, type(exc).__name__)
        return AuditOutcome.UNKNOWN


def _resolution(outcome: Mapping[str, Any], intent_id: str, result: str) -> Pending:
    intent = intent_from_entry(outcome)
    body = intent_body(uuid7(), intent, Phase.RESOLUTION, Outcome(result), intent_id)
    body["reason"] = _REASONS[AuditOutcome(result)]
    return Pending(body, (intent.system, intent.customer_id))
