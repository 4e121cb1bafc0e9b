"""The review side of the audit log, as the people who review it work: one row per change
(:meth:`Review.changes`) and the trend of changes, refusals and reveals per day and
system (:meth:`Review.trends`). It never writes, and never opens a sealed value.

**One row per change.** A forwarded change is two entries: its intent (written before
anything is sent, holding the values) and its outcome (``intent_id`` names the intent).
Everything else - a refusal, a dry run, a read, a reveal, an export, an erasure, an
expiry - is one entry. A row is an entry that is not an outcome of an intent
(``intent_id IS NULL``), joined with its outcome when it is an intent; an intent without
an outcome is *dangling* (in flight, or its process died: the reconciler closes it).
Paging is by the row's first entry (``seq``), so pages stay full and cursors exact; a
reader's scope alone is read per system and merged (:mod:`audit.scope`).

**Trends** count entries by day (UTC), system, action, outcome and refusal code with one
``GROUP BY`` over the generated query columns (``time``, ``system``, ``action``,
``phase``, ``outcome``, ``problem_code``): the bodies, and the values sealed in them,
are never read for it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from audit.backend import Backend
from audit.entries import check_key, iso, render
from audit.errors import InvalidAuditInput
from audit.scope import page_statement
from common.vocabulary import Action, AuditOutcome

MAX_LIMIT: Final = 1000
#: the longest range of one trend query, in days
MAX_TREND_DAYS: Final = 366
#: a scope with fewer entries than this (all time): the trends read them by
#: ``ix_audit_entry_system`` on SQLite, else the day range by ``ix_audit_entry_time``
FEW_ENTRIES: Final = 2000
#: an intent's own members a row shows; its outcome adds the rest
_ROW_MEMBERS: Final = (
    "audit_id", "time", "actor", "roles", "system", "customer_id", "purpose", "request_id",
    "action", "phase", "changed", "before", "after", "policy_version", "reason", "target_id",
    "outcome", "problem_code", "upstream_status",
)  # fmt: skip


@dataclass(frozen=True)
class ChangePage:
    """One page of rows; ``next_cursor`` is None on the last page."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def _scope_clause(
    systems: Collection[str] | None, *, indexed: bool = True
) -> tuple[list[str], list[Any]] | None:
    """(where, params) for the reader's scope in the trends; None when the scope is empty.

    Not ``indexed`` (SQLite, a scope of :data:`FEW_ENTRIES` or more): written ``+system
    IN (…)``, which SQLite's planner does not look up in ``ix_audit_entry_system``.
    Without statistics it takes an equality on ``system`` for a few rows, and would read
    every entry the scope's systems ever had; so it reads the day range by
    ``ix_audit_entry_time``, as the trends of every system do. PostgreSQL chooses by its
    statistics."""
    if systems is None:
        return [], []
    allowed = sorted(set(systems))
    if not allowed:
        return None
    return [f"{'' if indexed else '+'}system IN ({', '.join('?' * len(allowed))})"], allowed


class Review:
    """The review queries of one store (``systems``: the reader's scope, as in
    :class:`audit.reader.Reader`)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def changes(
        self,
        *,
        system: str | None = None,
        customer_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        oldest_first: bool = False,
        systems: Collection[str] | None = None,
    ) -> ChangePage:
        """Rows, newest first (or oldest first); personal values masked."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidAuditInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
        allowed = None if systems is None else sorted(set(systems))
        if allowed == []:
            return ChangePage()
        where: list[str] = ["intent_id IS NULL"]
        params: list[Any] = []
        for column, value in (("system", system), ("customer_id", customer_id), ("actor", actor)):
            if value is not None:
                check_key(value, column)
                where.append(f"{column} = ?")
                params.append(value)
        for op, moment in ((">=", since), ("<", until)):
            if moment is not None:
                where.append(f"time {op} ?")
                params.append(iso(moment))
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 19:
                raise InvalidAuditInput("invalid cursor")
            where.append("seq > ?" if oldest_first else "seq < ?")
            params.append(int(cursor))
        sql, params = page_statement(
            where, params, systems=allowed, limit=limit + 1, oldest_first=oldest_first,
            by_system=system is None and customer_id is None,
        )  # fmt: skip
        rows = await self._backend.fetchall(sql, params)
        entries = [render(int(r[0]), r[1], r[2], r[3]) for r in rows[:limit]]
        outcomes = await self._outcomes([e["audit_id"] for e in entries if e["phase"] == "intent"])
        changes = [_row(entry, outcomes.get(entry["audit_id"])) for entry in entries]
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return ChangePage(changes=changes, next_cursor=next_cursor)

    async def _few(self, systems: list[str]) -> bool:
        """Whether ``systems`` hold fewer than :data:`FEW_ENTRIES` entries: counted in
        ``ix_audit_entry_system`` alone, up to that many."""
        marks = ", ".join("?" * len(systems))
        rows = await self._backend.fetchall(
            "SELECT count(*) FROM (SELECT 1 FROM audit_entry"  # noqa: S608 - placeholders only
            f" WHERE system IN ({marks}) LIMIT ?) AS s", [*systems, FEW_ENTRIES],
        )  # fmt: skip
        return int(rows[0][0]) < FEW_ENTRIES

    async def _outcomes(self, intent_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not intent_ids:
            return {}
        marks = ", ".join("?" * len(intent_ids))
        sql = f"SELECT seq, body, prev_hash, hash FROM audit_entry WHERE intent_id IN ({marks})"  # noqa: S608 - placeholders only
        rows = await self._backend.fetchall(sql + " ORDER BY seq", intent_ids)
        found: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = render(int(r[0]), r[1], r[2], r[3])
            found.setdefault(entry["intent_id"], entry)  # the first outcome closes it
        return found

    async def trends(
        self, since: date, until: date, *, systems: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Per day (``since`` to ``until``, both included, UTC) and system: changes
        applied, changes whose outcome failed or is unknown, refusals by problem code,
        and reveals."""
        if until < since or (until - since).days + 1 > MAX_TREND_DAYS:
            raise InvalidAuditInput(f"a range of 1 to {MAX_TREND_DAYS} days, since before until")
        days = [(since + timedelta(days=n)).isoformat() for n in range((until - since).days + 1)]
        result: dict[str, Any] = {"since": days[0], "until": days[-1], "days": days,
                                  "series": [], "totals": _counts()}  # fmt: skip
        scoped = _scope_clause(systems)
        if scoped is None:
            return result
        if self._backend.kind == "sqlite" and scoped[0] and not await self._few(scoped[1]):
            scoped = _scope_clause(systems, indexed=False)
            assert scoped is not None
        where, params = scoped
        where += ["time >= ?", "time < ?"]
        params += [f"{days[0]}T00:00:00", f"{(until + timedelta(days=1)).isoformat()}T00:00:00"]
        where.append(
            "(outcome = 'rejected' OR action = 'reveal'"
            " OR (action = 'update' AND phase = 'outcome'))"
        )
        rows = await self._backend.fetchall(
            "SELECT substr(time, 1, 10), system, action, outcome, problem_code, count(*)"  # noqa: S608 - fixed clauses, values bound
            " FROM audit_entry WHERE " + " AND ".join(where)
            + " GROUP BY substr(time, 1, 10), system, action, outcome, problem_code",
            params,
        )
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for day, system, action, outcome, code, count in rows:
            cell = cells.setdefault((day, system), {"day": day, "system": system, **_counts()})
            for counts in (cell, result["totals"]):
                _add(counts, action, outcome, code, int(count))
        result["series"] = [cells[key] for key in sorted(cells)]
        return result


def _counts() -> dict[str, Any]:
    return {"changes": 0, "failed": 0, "reveals": 0, "refusals": {}}


def _add(counts: dict[str, Any], action: str, outcome: str, code: str | None, n: int) -> None:
    if outcome == AuditOutcome.REJECTED:
        refusals = counts["refusals"]
        key = code or "unknown"  # a refusal recorded without a problem code
        refusals[key] = refusals.get(key, 0) + n
    elif action == Action.REVEAL:
        counts["reveals"] += n
    elif outcome == AuditOutcome.APPLIED:
        counts["changes"] += n
    else:
        counts["failed"] += n


def _row(entry: dict[str, Any], outcome: dict[str, Any] | None) -> dict[str, Any]:
    """One row: the entry, with its outcome's members when it is an intent."""
    row: dict[str, Any] = {name: entry.get(name) for name in _ROW_MEMBERS}
    row["change_id"] = entry["audit_id"]
    row["entries"] = [entry["audit_id"]]
    row["dangling"] = entry["phase"] == "intent" and outcome is None
    row["outcome_time"] = entry["time"] if entry["phase"] == "outcome" else None
    if outcome is not None:
        row["entries"].append(outcome["audit_id"])
        for name in ("outcome", "problem_code", "upstream_status"):
            row[name] = outcome.get(name)
        row["outcome_time"] = outcome["time"]
    del row["audit_id"], row["phase"]
    return row
