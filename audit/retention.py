"""Storage limitation (GDPR Art. 5(1)(e)): sealed values are forgotten when the retention
of their data category ends, by destroying the keys they are sealed under.

**The choice: a key per subject and retention period, chosen when a value is sealed.**
One key per subject cannot express retention: an active customer's old address would
live as long as last week's phone number, and a national id (1 year) as long as the name
(3 years) beside it. Re-sealing what must stay under a new key cannot be done either:
the ciphertexts are part of the hashed entries, so re-sealing would break the chain. So
the key is chosen by *when the values must be forgotten*: an entry's values (time ``t``,
retention ``r`` days: the longest of their categories', from the policy) are sealed under
its subject's key of the slot ``ceil((t + r) / P) * P`` - the end of the key period
(``P`` days, counted from 1970-01-01) in which their retention ends (:func:`slot_expiry`).
Every value under a key is due by that end, none earlier than one period before it. When
it has passed, :func:`expire` destroys the key (``wrapped = NULL``, ``erased_reason =
'retention'``) and writes an ``expire`` entry for the subject in the same transaction:
the entries and the chain stay byte for byte, the values read ``erased`` with the reason
``retention``. A value is forgotten between its retention's end and one period (plus one
run of the job) later, never before. Values changed together in one request share the
longest of their retentions.

Nothing already sealed is touched, so expiry needs no lock against writers: a slot whose
end has passed is never chosen again (``t + r > now`` for every new entry). Keys made
before slots existed, and values of a policy that states no retention, have no slot: kept
until erased (:class:`ExpiryReport` counts them).

**One at a time.** The job holds ``Backend.job_lock(EXPIRE_LOCK)`` (PostgreSQL: a
session advisory lock; SQLite: a file lock) while it runs; another replica finds it held
and skips this run (``ExpiryReport.ran`` is False).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from audit.backend import Backend
from audit.batch import Pending
from audit.bodies import admin_body
from audit.entries import iso, parse_iso
from audit.ids import uuid7
from common.vocabulary import Action, ErasureReason

#: who writes the ``expire`` entries
RETENTION_ACTOR: Final = "gdpr-gateway retention"
#: the job lock's key (a fixed 63-bit number; subject locks hash system and customer id)
EXPIRE_LOCK: Final = 0x6A7D_17A0_E791
#: the default key period, in days: a value is forgotten at most this long after its
#: retention ends (plus one run of the job)
DEFAULT_KEY_PERIOD_DAYS: Final = 7
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK: Final = 500
DESTROY_EXPIRED: Final = (
    "UPDATE audit_subject_key SET wrapped = NULL, erased_at = ?, erased_reason = ?"
    " WHERE key_id = ? AND erased_at IS NULL"
)

Append = Callable[[Pending], Awaitable[str]]


def slot_expiry(time_text: str, retention_days: int | None, period_days: int) -> str | None:
    """The end of the key period in which values sealed at ``time_text`` (the entry's
    time) reach the end of ``retention_days``; None without a retention."""
    if retention_days is None:
        return None
    micros = _micros(time_text) + retention_days * _DAY_MICROS
    # the same division as timedelta / timedelta (int / int, correctly rounded)
    days = math.ceil(micros / (period_days * _DAY_MICROS)) * period_days
    end = _ENDS.get(days)
    if end is None:
        if len(_ENDS) >= _REMEMBERED:
            _ENDS.clear()
        end = _ENDS[days] = iso(_EPOCH + timedelta(days=days))
    return end


#: ``slot_expiry`` runs per sealed entry (issue 11): the seconds of recent entry times
#: (``YYYY-MM-DDTHH:MM:SS.``) since the epoch, and recent period ends (days since the
#: epoch) as text, so that a time is parsed and an end formatted once, not per entry
_SECONDS: dict[str, int] = {}
_ENDS: dict[int, str] = {}
_REMEMBERED: Final = 64
_DAY_MICROS: Final = 86_400_000_000


def _micros(time_text: str) -> int:
    """An entry's time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) in microseconds since the epoch."""
    head, fraction = time_text[:20], time_text[20:26]
    second = _SECONDS.get(head)
    if (
        second is not None
        and len(time_text) == 27
        and time_text[26] == "Z"
        and fraction.isascii()
        and fraction.isdigit()
    ):
        return second * 1_000_000 + int(fraction)
    micros = (parse_iso(time_text) - _EPOCH) // timedelta(microseconds=1)  # raises as before
    if len(_SECONDS) >= _REMEMBERED:
        _SECONDS.clear()
    _SECONDS[head] = micros // 1_000_000
    return micros


@dataclass(frozen=True)
class Due:
    """One subject's keys whose retention period has ended."""

    system: str
    customer_id: str
    key_ids: tuple[str, ...]
    ended: str  # the latest end among them
    entries: int = 0
    values: int = 0


@dataclass(frozen=True)
class ExpiryReport:
    """What one run did (or, dry, would do)."""

    ran: bool  # False: another process held the job
    dry_run: bool
    subjects: int = 0
    keys: int = 0
    entries: int = 0
    values: int = 0
    audit_ids: tuple[str, ...] = ()
    #: live keys without a retention period (kept until erased)
    without_retention: int = 0
    #: when the oldest value still readable was sealed (its key's creation), or None
    oldest_sealed: str | None = None


def sealed_count(body: dict[str, Any]) -> int:
    """How many values an entry body holds sealed: per side, a map of path -> ciphertext
    (body format 1), or ``{"paths": [...], "box": ciphertext}`` (one ciphertext per side,
    the paths in clear: format 2)."""
    count = 0
    for side in (body.get("sealed") or {}).values():
        if isinstance(side, dict) and isinstance(side.get("paths"), list) and "box" in side:
            count += len(side["paths"])
        elif isinstance(side, dict):
            count += len(side)
    return count


async def _due(backend: Backend, now: str) -> list[Due]:
    rows = await backend.fetchall(
        "SELECT key_id, system, customer_id, expires_at FROM audit_subject_key"
        " WHERE wrapped IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= ?"
        " ORDER BY system, customer_id, key_id",
        [now],
    )
    by_subject: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for key_id, system, cid, expires in rows:
        by_subject.setdefault((system, cid), []).append((key_id, expires))
    counts = await _counts([key_id for key_id, *_ in rows], backend)
    return [
        Due(
            system,
            cid,
            tuple(k for k, _ in keys),
            max(e for _, e in keys),
            sum(counts.get(k, (0, 0))[0] for k, _ in keys),
            sum(counts.get(k, (0, 0))[1] for k, _ in keys),
        )
        for (system, cid), keys in by_subject.items()
    ]


async def _counts(key_ids: list[str], backend: Backend) -> dict[str, tuple[int, int]]:
    """(entries, sealed values) under each key (the bodies' ciphertexts are not opened)."""
    found: dict[str, tuple[int, int]] = {}
    for start in range(0, len(key_ids), _CHUNK):
        chunk = key_ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT key_id, body FROM audit_entry WHERE key_id IN ({marks})"  # noqa: S608 - placeholders only
        for key_id, body in await backend.fetchall(sql, chunk):
            entries, values = found.get(key_id, (0, 0))
            found[key_id] = (entries + 1, values + sealed_count(json.loads(body)))
    return found


async def _census(backend: Backend) -> tuple[int, str | None]:
    """(live keys without retention, the creation of the oldest live key)."""
    rows = await backend.fetchall(
        "SELECT count(*) FROM audit_subject_key WHERE wrapped IS NOT NULL"
        " AND expires_at IS NULL"
    )
    oldest = await backend.fetchall(
        "SELECT min(created_at) FROM audit_subject_key WHERE wrapped IS NOT NULL"
    )
    return int(rows[0][0] or 0), oldest[0][0]


def _pending(due: Due, now: str, request_id: str) -> Pending:
    reason = (
        f"retention: the retention period of {due.values} sealed value(s) in {due.entries}"
        f" entr{'y' if due.entries == 1 else 'ies'} ended by {due.ended}"
    )
    body = admin_body(
        Action.EXPIRE, due.system, due.customer_id, actor=RETENTION_ACTOR, roles=(),
        request_id=request_id, reason=reason,
    )  # fmt: skip
    rows = [(now, ErasureReason.RETENTION.value, key_id) for key_id in due.key_ids]
    return Pending(body, (due.system, due.customer_id), also=[(DESTROY_EXPIRED, rows)])


async def expire(
    backend: Backend, append: Append, *, now: datetime | None = None, dry_run: bool = False
) -> ExpiryReport:
    """Destroy the keys whose retention period ended by ``now`` (default: now), one
    ``expire`` entry per subject in the transaction that destroys its keys. ``dry_run``
    changes nothing and reports what would expire. Skips (``ran`` False) while another
    process runs the job."""
    moment = iso(now or datetime.now(UTC))
    async with backend.job_lock(EXPIRE_LOCK) as held:
        if not held:
            without, oldest = await _census(backend)
            return ExpiryReport(
                ran=False, dry_run=dry_run, without_retention=without, oldest_sealed=oldest
            )
        due = await _due(backend, moment)
        ids: list[str] = []
        if not dry_run:
            request_id = f"expire-{uuid7()}"
            for start in range(0, len(due), _CHUNK):  # a group commit per chunk
                pendings = [_pending(d, moment, request_id) for d in due[start : start + _CHUNK]]
                ids += await asyncio.gather(*(append(p) for p in pendings))
        without, oldest = await _census(backend)
    return ExpiryReport(
        ran=True,
        dry_run=dry_run,
        subjects=len(due),
        keys=sum(len(d.key_ids) for d in due),
        entries=sum(d.entries for d in due),
        values=sum(d.values for d in due),
        audit_ids=tuple(ids),
        without_retention=without,
        oldest_sealed=oldest,
    )


async def erasure(backend: Backend, key_ids: Iterable[str]) -> dict[str, Any] | None:
    """Why and when the first of ``key_ids`` that is destroyed was destroyed:
    ``{"reason": "retention"|"request", "time": ...}``, or None."""
    for key_id in key_ids:
        rows = await backend.fetchall(
            "SELECT erased_reason, erased_at FROM audit_subject_key"
            " WHERE key_id = ? AND wrapped IS NULL",
            [key_id],
        )
        if rows:
            reason = rows[0][0] or ErasureReason.REQUEST.value
            return {"reason": reason, "time": rows[0][1]}
    return None
