"""Migration 0010: the trends read ``ix_audit_entry_time`` alone on SQLite (it holds
every column of their query), and 0010 keeps the rows and the answers on both stores and
goes back to 0009's ``(time)``."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from audit import AuditLog, Outcome, upgrade
from audit.backend import QUERY_COLUMNS
from audit.connect import connect_backend
from audit.review import Review
from tests.audit.conftest import make_intent, sql
from tests.audit.test_entry_indexes import (
    _DAY,
    STORES,
    TIME,
    _fill,
    _indexes,
    _large_scope_trends,
    _pg_scratch,
)
from tests.audit.test_migrations import _to_revision
from tests.audit.test_pg_query_columns import keys

COVERING = "(time, system, action, phase, outcome, problem_code)"


def _all_trends(c: Any) -> Any:
    return c.review.trends(_DAY - timedelta(days=29), _DAY)


async def _statements(url: str, run: Any) -> list[tuple[str, list[Any]]]:
    """The trend query that ``run`` sends, and its parameters."""
    backend = await connect_backend(url)
    seen: list[tuple[str, list[Any]]] = []
    fetchall = backend.fetchall

    async def recording(statement: str, params: Any = ()) -> Any:
        seen.append((statement, list(params)))
        return await fetchall(statement, params)

    backend.fetchall = recording  # type: ignore[method-assign]
    try:
        await run(SimpleNamespace(review=Review(backend)))
    finally:
        await backend.close()
    return [(s, p) for s, p in seen if "GROUP BY" in s]


def _table_reads(path: Path, statement: str, params: list[Any]) -> list[str]:
    """The bytecode's reads of ``audit_entry``'s own rows (``Column`` on the cursor opened
    on the table, not an index): none when an index holds every column the query uses.
    SQLite 3.40's ``EXPLAIN QUERY PLAN`` says ``USING INDEX``, not ``COVERING``, for an
    index of generated columns even then: its seek of the row is deferred, and never
    made when no column is read from the row."""
    with sqlite3.connect(path) as con:
        root = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'audit_entry'"
        ).fetchone()[0]
        code = con.execute(f"EXPLAIN {statement}", params).fetchall()
    tables = {r[2] for r in code if r[1] == "OpenRead" and r[3] == root}
    assert tables, code  # the table is opened (for the deferred seek)
    return [f"{r[1]} {r[2]} {r[3]}" for r in code if r[1] == "Column" and r[2] in tables]


@pytest.mark.parametrize("run", [_all_trends, _large_scope_trends], ids=["all", "large scope"])
def test_sqlite_trends_read_the_time_index_alone(run: Any, tmp_path: Path) -> None:
    """The trends of a day range read no row of ``audit_entry`` on SQLite, only
    ``ix_audit_entry_time`` (0009: each row of the range, for its ``body``)."""
    path = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(upgrade(url))
    asyncio.run(_fill(url))
    trend = asyncio.run(_statements(url, run))
    assert len(trend) == 1, trend
    with sqlite3.connect(path) as con:
        plan = " | ".join(r[3] for r in con.execute(f"EXPLAIN QUERY PLAN {trend[0][0]}",
                                                    trend[0][1]))  # fmt: skip
    assert f"INDEX {TIME} (time>? AND time<?)" in plan, plan
    assert _table_reads(path, *trend[0]) == []


async def _trends(url: str) -> list[Any]:
    backend = await connect_backend(url)
    try:
        review = Review(backend)
        since = _DAY - timedelta(days=29)
        return [
            await review.trends(since, _DAY),
            await review.trends(since, _DAY, systems={"billbee", "keycom"}),
            await review.trends(_DAY, _DAY, systems={"billbee"}),
        ]
    finally:
        await backend.close()


async def _round_trip(url: str) -> None:
    columns = f"SELECT seq, {', '.join(QUERY_COLUMNS)} FROM audit_entry ORDER BY seq"  # noqa: S608
    secret = keys()
    await _to_revision(url, "0009")
    await _fill(url, secret)
    before, answers, old = await sql(url, columns), await _trends(url), await _indexes(url)
    assert old[TIME].endswith("(time)")
    assert answers[0]["totals"]["changes"] > 0

    await upgrade(url)
    assert await sql(url, columns) == before
    assert await _trends(url) == answers
    indexes = await _indexes(url)
    # PostgreSQL keeps (time): 0010 changes SQLite's only
    assert indexes[TIME].endswith(COVERING if url.startswith("sqlite") else "(time)")
    assert {k: v for k, v in indexes.items() if k != TIME} == {
        k: v for k, v in old.items() if k != TIME}  # fmt: skip
    async with await AuditLog.open(url, **secret) as log:
        await log.record(make_intent("1"), Outcome("rejected", problem_code="x"))
        assert (await log.verify()).ok

    await _to_revision(url, "0009", down=True)
    assert await _indexes(url) == old
    assert (await sql(url, columns))[: len(before)] == before
    assert await _trends(url) != answers  # the new refusal is counted


@pytest.mark.parametrize("kind", STORES)
def test_0010_keeps_the_rows_and_the_answers_and_goes_back(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store at 0009 with entries: after 0010 the rows and the trends are the same and
    SQLite's time index holds the trends' columns (PostgreSQL's is left alone); back at
    0009 it is ``(time)`` again."""
    if kind == "sqlite":
        asyncio.run(_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"))
        return
    with _pg_scratch(request.getfixturevalue("pg_base_url")) as url:
        asyncio.run(_round_trip(url))
