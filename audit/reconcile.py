"""Closing intents that have no outcome: a crash between ``begin`` and ``finish`` (this
process earlier, or another replica), or an outcome this process could not write.

Each is closed with an ``outcome`` entry: with a resolver, the upstream is re-read to
tell whether the change took effect; otherwise, or when that fails, ``unknown``. The
close is exclusive: when another replica closed the intent first, nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from audit.batch import Pending
from audit.bodies import intent_body, intent_from_entry
from audit.entries import ERASED, UNREADABLE, parse_iso, render
from audit.errors import InvalidAuditInput
from audit.ids import uuid7
from audit.reader import EntryRow, Reader
from audit.types import OUTCOMES, Outcome

log = logging.getLogger(__name__)

#: (system, customer id, the values the intent would write) -> an outcome
Resolver = Callable[[str, str, Mapping[str, Any]], Awaitable[str]]
Append = Callable[[Pending], Awaitable[str]]

_RESTARTED: Final = "reconciled: no outcome was recorded (restart)"
_UNRECORDED: Final = "reconciled: the outcome could not be recorded (audit store unavailable)"


@dataclass
class OpenIntents:
    """This process's intents: in flight (begun, not yet finished), and those whose
    outcome it could not write (no longer in flight: the next reconcile closes them,
    whatever their age)."""

    in_flight: dict[str, Pending] = field(default_factory=dict)
    unrecorded: set[str] = field(default_factory=set)


async def reconcile(
    reader: Reader,
    append: Append,
    mine: OpenIntents,
    resolver: Resolver | None,
    min_age_seconds: float,
) -> int:
    """Close the open intents that are not in flight here and are older than
    ``min_age_seconds`` (younger ones may be other replicas' writes in flight), and
    those in ``mine.unrecorded`` whatever their age. Returns how many were closed."""
    unrecorded = set(mine.unrecorded)
    now = time.time()
    closed = 0
    still_open: set[str] = set()
    for *row, created_at in await reader.open_intents():
        entry = render(int(row[0]), row[1], row[2], row[3])
        audit_id = entry["audit_id"]
        still_open.add(audit_id)
        if audit_id in mine.in_flight:
            continue
        orphan = audit_id in unrecorded
        if not orphan and now - parse_iso(created_at).timestamp() < min_age_seconds:
            continue
        result = await _outcome(reader, resolver, entry, tuple(row))
        try:
            await append(_closing(entry, result, orphan))
        except InvalidAuditInput:  # another replica closed it first
            mine.unrecorded.discard(audit_id)
            continue
        mine.unrecorded.discard(audit_id)
        closed += 1
    # closed meanwhile (the outcome did reach the store, or another replica closed it)
    mine.unrecorded -= unrecorded - still_open
    return closed


async def _outcome(
    reader: Reader, resolver: Resolver | None, entry: Mapping[str, Any], row: EntryRow
) -> str:
    """What became of the intent: the resolver's answer, or ``unknown``."""
    if resolver is None:
        return "unknown"
    clear = await reader.in_clear(*row)
    unreadable = (ERASED, UNREADABLE)  # not values the upstream could hold
    after = {k: v for k, v in clear["after"].items() if v not in unreadable}
    try:
        answer = await resolver(entry["system"], entry["customer_id"], after)
    except Exception as exc:  # a resolver failure must not stop start-up
        log.warning(
            "audit reconcile: resolver failed for entry %s (%s)",
            entry["audit_id"], type(exc).__name__,
        )  # fmt: skip
        return "unknown"
    return answer if answer in OUTCOMES else "unknown"


def _closing(entry: Mapping[str, Any], result: str, orphan: bool) -> Pending:
    intent = intent_from_entry(entry)
    body = intent_body(uuid7(), intent, "outcome", Outcome(result), entry["audit_id"])
    body["reason"] = _UNRECORDED if orphan else _RESTARTED
    return Pending(
        body,
        (intent.system, intent.customer_id),
        closes_intent=entry["audit_id"],
        exclusive_close=True,
    )
