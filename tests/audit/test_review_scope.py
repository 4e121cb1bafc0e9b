"""A reader's scope of several systems is read per system and merged (audit/scope.py,
migration 0009): the pages are those of the whole log filtered by system - the same
rows, in ``seq`` order, with exact cursors - newest or oldest first, on both stores;
and a customer without a system is found in every system. The plans are
``tests/audit/test_entry_indexes.py``'s; the latency ``bench/review_bench.py``'s."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, Outcome, upgrade
from audit.connect import connect_backend
from audit.reader import Reader
from bench import review_bench
from tests.audit.conftest import make_intent

SYSTEMS = ("billbee", "keycom", "shopwave")
#: which system each event is of, in turn: runs of one, interleavings
_UNEVEN = (0, 0, 1, 0, 2, 1, 1, 1, 0, 2, 2, 0, 1)


async def _write(log: AuditLog) -> None:
    """27 events over three systems, interleaved unevenly: changes (two entries, one
    left dangling) and refusals (one)."""
    for n in range(27):
        system = SYSTEMS[_UNEVEN[n % len(_UNEVEN)]]
        intent = make_intent(str(n % 4), system=system, request_id=f"r{n}")
        if n % 5 == 0:
            await log.record(intent, Outcome("rejected", problem_code="forbidden_field"))
        elif n != 13:
            await log.finish(await log.begin(intent), Outcome("applied"))
        else:
            await log.begin(intent)


async def _pages(fetch: Any, key: str, **kw: Any) -> list[list[str]]:
    """Every page's ids, following the cursors."""
    pages, cursor = [], None
    while True:
        page = await fetch(cursor=cursor, **kw)
        pages.append([e[key] for e in getattr(page, "entries", None) or page.changes])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_a_scope_of_several_systems_pages_as_the_filtered_log(audit_log: AuditLog) -> None:
    await _write(audit_log)
    every = (await audit_log.query(limit=1000)).entries
    rows = (await audit_log.changes(limit=1000)).changes
    for scope in ({"billbee", "keycom"}, set(SYSTEMS), {"keycom", "shopwave", "none"}):
        want = [e["audit_id"] for e in every if e["system"] in scope]
        got = await _pages(audit_log.query, "audit_id", systems=scope, limit=4)
        assert [i for page in got for i in page] == want
        assert all(len(page) == 4 for page in got[:-1]) and 1 <= len(got[-1]) <= 4
        want_rows = [r["change_id"] for r in rows if r["system"] in scope]
        for oldest in (False, True):
            got = await _pages(audit_log.changes, "change_id", systems=scope, limit=3,
                               oldest_first=oldest)  # fmt: skip
            flat = [i for page in got for i in page]
            assert flat == (want_rows[::-1] if oldest else want_rows)
        with_actor = await _pages(audit_log.query, "audit_id", systems=scope, actor="alice")
        assert [i for page in with_actor for i in page] == want  # another filter too
    assert any(r["dangling"] for r in rows)


async def test_a_customer_without_a_system_is_found_in_every_system(
    audit_log: AuditLog,
) -> None:
    await _write(audit_log)
    every = (await audit_log.query(limit=1000)).entries
    want = [e["audit_id"] for e in every if e["customer_id"] == "1"]
    assert len({e["system"] for e in every if e["customer_id"] == "1"}) > 1
    assert [e["audit_id"] for e in (await audit_log.query(customer_id="1")).entries] == want
    rows = (await audit_log.changes(limit=1000)).changes
    assert [r["change_id"] for r in (await audit_log.changes(customer_id="1")).changes] == [
        r["change_id"] for r in rows if r["customer_id"] == "1"]  # fmt: skip


def test_the_review_bench_runs(tmp_path: Path) -> None:
    """bench/review_bench.py on a small SQLite store (its figures are not checked)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    asyncio.run(upgrade(url))
    got = asyncio.run(review_bench.measure(url, 600, 1))
    assert set(review_bench.QUERIES) <= set(got)

    async def count() -> list[Any]:
        backend = await connect_backend(url)
        try:
            reader = Reader(backend, master_key=b"\0" * 32, public_key=b"\0" * 32)
            return [len((await reader.query(systems={s}, limit=1000)).entries)
                    for s in review_bench.SYSTEMS]  # fmt: skip
        finally:
            await backend.close()

    counts = asyncio.run(count())
    assert sum(counts) == 600 and counts[0] > counts[1] > counts[3]


async def test_the_trends_of_a_scope_are_the_same_by_either_index(
    audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite reads a small scope's trends by ``ix_audit_entry_system``, a large one's by
    the day range (audit/review.py ``FEW_ENTRIES``): the counts are the same."""
    await _write(audit_log)
    today = datetime.now(UTC).date()
    span = (today - timedelta(days=1), today + timedelta(days=1))
    scope = {"billbee", "shopwave"}
    few = await audit_log.trends(*span, systems=scope)
    monkeypatch.setattr("audit.review.FEW_ENTRIES", 0)
    many = await audit_log.trends(*span, systems=scope)
    assert few == many and few["totals"]["changes"] > 0 and few["totals"]["refusals"]
    assert {cell["system"] for cell in few["series"]} == scope
