"""One page of ``audit_entry`` rows, newest (or oldest) first, within a reader's scope:
the statement :meth:`audit.reader.Reader.query` and :meth:`audit.review.Review.changes`
send.

A scope alone (``system IN (…)`` and no ``system`` / ``customer_id`` filter) is read per
system: each system's rows in ``seq`` order from ``ix_audit_entry_system`` (``system,
seq``; migration 0009), at most one page of each, merged by ``seq`` in the same
statement (``UNION ALL``). A page then reads about as many rows per system as it shows
(the scopes are a few of the configured systems), whatever the systems' share of the log
and on both stores: SQLite keeps no statistics, and ``system IN (…) ORDER BY seq`` would
have either store look up every entry of the scope's systems and sort them, or read the
log by ``seq`` until the page is full (for a rare system: all of it).
"""

from __future__ import annotations

from typing import Any, Final

#: what a page's statements select: a stored entry (``audit.entries.render``'s arguments)
COLUMNS: Final = "seq, body, prev_hash, hash"


def page_statement(
    where: list[str],
    params: list[Any],
    *,
    systems: list[str] | None,
    by_system: bool,
    limit: int,
    oldest_first: bool = False,
) -> tuple[str, list[Any]]:
    """(sql, params) of up to ``limit`` rows matching ``where`` (``AND``-ed, values in
    ``params``), in ``seq`` order, within ``systems`` (sorted, not empty; None: every
    system). ``by_system``: no filter of ``where`` finds the rows by another index (a
    ``system`` or ``customer_id`` equality), so the scope is read per system."""
    order = "ASC" if oldest_first else "DESC"
    tail = f" ORDER BY seq {order} LIMIT ?"
    if systems is None or not by_system or len(systems) == 1:
        if systems is not None:  # one system: an equality, which both planners order by
            marks = ", ".join("?" * len(systems))
            scope = "system = ?" if len(systems) == 1 else f"system IN ({marks})"
            where, params = [scope, *where], [*systems, *params]
        sql = f"SELECT {COLUMNS} FROM audit_entry"  # noqa: S608 - fixed clauses, values bound
        return sql + (" WHERE " + " AND ".join(where) if where else "") + tail, [*params, limit]
    clauses = " AND ".join(["system = ?", *where])
    arms = [
        f"SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM audit_entry WHERE {clauses}{tail})"  # noqa: S608 - fixed clauses, values bound
        f" AS s{n}"
        for n in range(len(systems))
    ]
    values = [v for system in systems for v in (system, *params, limit)]
    return " UNION ALL ".join(arms) + tail, [*values, limit]
