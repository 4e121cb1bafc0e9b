"""Verify in segments (audit/verify_segment.py): the chain cut into segments checked on
their own - here or by helper processes - and joined in order finds exactly what one pass
over the whole chain finds, for every kind of tampering and wherever the cut falls; and
on the real PostgreSQL, segments checked by helper processes report what this process
reports, and a helper that fails leaves its segments to this process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audit.verify
from audit import AuditLog, Outcome, VerifyReport
from audit.chain import GENESIS, ChainState, canonical, check_rows, entry_hash, query_values
from audit.verify_segment import Segment, check_segment, decode, encode, link
from tests.audit.conftest import make_intent, sql

Row = tuple[Any, ...]
KINDS = ("none", "body", "prev_hash", "hash", "deleted", "column", "column and body")


def _chain(n: int) -> list[Row]:
    """``n`` rows as PostgreSQL gives them: the chain's four columns, then the query
    columns the writer sent."""
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        body = canonical({
            "audit_id": f"id{seq}", "time": f"2026-01-01T00:00:{seq:02d}.000000Z",
            "system": "billbee", "customer_id": str(seq % 3), "actor": "alice",
            "action": "update", "phase": "intent" if seq % 2 else "outcome",
            "intent_id": None if seq % 2 else f"id{seq - 1}", "key_id": f"k{seq % 3}",
            "after": {"customer_id": "nested, not a column"},
        })  # fmt: skip
        digest = entry_hash(seq, prev, body)
        rows.append((seq, body, prev, digest, *query_values(orjson_loads(body))))
        prev = digest
    return rows


def orjson_loads(body: str) -> dict[str, Any]:
    import orjson

    value: dict[str, Any] = orjson.loads(body)
    return value


def _tamper(rows: list[Row], kind: str, index: int) -> list[Row]:
    rows = list(rows)
    row = list(rows[index])
    if kind == "deleted":
        del rows[index]
        return rows
    if kind in ("body", "column and body"):
        row[1] = row[1].replace('"actor":"alice"', '"actor":"mallory"')
    if kind == "prev_hash":
        row[2] = "f" * 64
    if kind == "hash":
        row[3] = "e" * 64
    if kind in ("column", "column and body"):
        row[4 + 3] = "someone-else"  # customer_id
    rows[index] = tuple(row)
    return rows


def _in_segments(rows: list[Row], size: int, head_seq: int) -> tuple[ChainState, dict[int, str]]:
    """What verify finds reading ``seq > lo ORDER BY seq LIMIT size`` per segment."""
    state, seen = ChainState(), {}
    marks = set(range(3, head_seq + 1, 3))
    for lo in range(0, head_seq, size):
        read = [row for row in rows if row[0] > lo][:size]
        segment = decode(encode(check_segment(read, lo, marks, columns=True)))  # as a helper's
        if not link(state, segment, seen):
            break
    return state, seen


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 30), st.sampled_from(KINDS), st.data())
def test_segments_find_what_one_pass_finds(n: int, kind: str, data: st.DataObject) -> None:
    rows = _tamper(_chain(n), kind, index := data.draw(st.integers(0, n - 1), label="index"))
    size = data.draw(st.integers(1, n + 1), label="segment size")
    state, seen = _in_segments(rows, size, n)
    whole, whole_seen = _in_segments(rows, n, n)  # one segment: one pass
    assert dataclasses.astuple(state) == dataclasses.astuple(whole)
    assert seen == whole_seen
    if kind != "column":  # the chain's own checks: as chain.check_rows over all rows
        reference = ChainState()
        check_rows(reference, [row[:4] for row in rows])
        assert dataclasses.astuple(state) == dataclasses.astuple(reference)
    if kind == "none":
        assert (state.ok, state.entries, state.head) == (True, n, rows[-1][3])
    elif kind == "column":
        assert (state.first_bad, state.entries) == (f"id{index + 1}", index)
        assert "query columns do not match" in (state.reason or "")
    elif kind == "column and body":  # the hash's break is reported first
        assert "hash does not match" in (state.reason or "")
    else:  # a break, or (the last row deleted) a chain that ends before the head
        assert not state.ok or state.seq < n


def test_a_segment_starts_from_the_prev_hash_of_its_first_row() -> None:
    rows = _chain(6)
    segment = check_segment(rows[3:], 3, {5}, columns=True)
    assert (segment.entries, segment.seq, segment.head) == (3, 6, rows[5][3])
    assert (segment.start_prev, segment.first_id) == (rows[2][3], "id4")
    assert segment.marks == {5: rows[4][3]}
    assert check_segment([], 6, (), columns=True) == Segment(6, seq=6)


# ---------------------------------------------------------------- helper processes, real PostgreSQL
@pytest.fixture
async def pg_log(
    pg_base_url: str | None, keys: dict[str, bytes]
) -> AsyncIterator[tuple[AuditLog, str, list[str]]]:
    """A PostgreSQL log of 41 entries (checkpoints every 7) and its ids."""
    from tests.audit.conftest import reset_pg

    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    log = await AuditLog.open(pg_base_url, checkpoint_every=7, **keys)
    try:
        ids = [await log.record(make_intent(str(n % 5), request_id=f"r{n}"), Outcome("applied"))
               for n in range(41)]  # fmt: skip
        yield log, pg_base_url, ids
    finally:
        await log.close()
        await sql(pg_base_url, "ALTER TABLE audit_entry ENABLE TRIGGER audit_entry_query_columns")


def _helpers_first(monkeypatch: pytest.MonkeyPatch, helpers: int, *, alone: bool) -> list[int]:
    """Segments of 4 rows, and ``helpers`` helper processes however short the chain.
    This process's own share starts once the helpers have ended (``alone``: never);
    returns the list the segments this process checked go to."""
    monkeypatch.setattr(audit.verify, "_SEGMENT", 4)
    monkeypatch.setattr(audit.verify, "HELPERS_FROM", 0)
    monkeypatch.setattr(audit.verify, "helper_count", lambda: helpers)
    running: list[object] = []
    ended = asyncio.Event()
    run, share = audit.verify._Helper.run, audit.verify._Segments.here
    checked = audit.verify._Segments.check

    async def run_counted(self: Any) -> None:
        running.append(self)
        try:
            await run(self)
        finally:
            running.remove(self)
            if not running:
                ended.set()

    async def here_after(self: Any) -> None:
        await asyncio.sleep(0)  # the helpers' tasks have begun
        if running:
            await ended.wait()
        if not alone:
            await share(self)

    here: list[int] = []

    def check(self: Any, index: int, rows: Any) -> Segment:
        here.append(index)
        return checked(self, index, rows)

    monkeypatch.setattr(audit.verify._Helper, "run", run_counted)
    monkeypatch.setattr(audit.verify._Segments, "here", here_after)
    monkeypatch.setattr(audit.verify._Segments, "check", check)
    return here


def _verdict(report: VerifyReport) -> tuple[Any, ...]:
    return dataclasses.astuple(report)


TAMPERING: dict[str, tuple[str, ...]] = {
    "body": (
        "UPDATE audit_entry SET body = replace(body::text, 'new note', 'NEW')::json WHERE seq = 9",
    ),
    "prev_hash": ("UPDATE audit_entry SET prev_hash = repeat('f', 64) WHERE seq = 13",),
    "deleted": ("DELETE FROM audit_entry WHERE seq = 17",),
    "column": (
        "ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_query_columns",
        "UPDATE audit_entry SET customer_id = 'someone-else' WHERE seq = 21",
    ),
    "column at a segment's first row": (
        "ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_query_columns",
        "UPDATE audit_entry SET intent_id = 'x' WHERE seq = 25",
    ),
    "tail": ("DELETE FROM audit_entry WHERE seq > 38",),
}


@pytest.mark.postgres
@pytest.mark.parametrize("kind", [None, *TAMPERING])
async def test_helper_processes_report_what_this_process_reports(
    pg_log: tuple[AuditLog, str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str | None,
) -> None:
    log, url, ids = pg_log
    for statement in TAMPERING.get(kind or "", ()):
        await sql(url, statement)
    here_alone = await log.verify()  # 41 entries: below HELPERS_FROM, no helper
    here = _helpers_first(monkeypatch, 2, alone=True)
    by_helpers = await log.verify()
    assert here == []  # every segment was checked by a helper
    assert not [r for r in caplog.records if r.name == "audit.verify"]  # none failed
    assert _verdict(by_helpers) == _verdict(here_alone)
    if kind is None:
        assert (by_helpers.ok, by_helpers.entries, by_helpers.checkpoints) == (True, 41, 5)
    else:
        assert not by_helpers.ok
        if kind != "tail":
            assert by_helpers.first_bad in ids


BROKEN_HELPERS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "cannot connect": lambda m: None,  # the DSN of a database that does not exist: below
    "cannot start": lambda m: m.setattr(audit.verify, "BOOTSTRAP", "import sys; sys.exit(3)"),
    "answers nonsense": lambda m: m.setattr(
        audit.verify, "BOOTSTRAP",
        "import sys; print('{\"ready\":true}'); print('nonsense', flush=True); sys.stdin.read()",
    ),
    "dies after one answer": lambda m: m.setattr(
        audit.verify, "BOOTSTRAP", audit.verify.BOOTSTRAP.replace(
            "helper_main()",
            "import audit.verify_segment as s; e, n = s.encode, []\n"
            "s.encode = lambda g: sys.exit(1) if n else (n.append(1), e(g))[1]\n"
            "helper_main()",
        ),
    ),
    "fails on a row": lambda m: m.setattr(
        audit.verify, "BOOTSTRAP", audit.verify.BOOTSTRAP.replace(
            "helper_main()",
            "import audit.verify_segment as s\n"
            f"s.check_segment = lambda *a, **k: (_ for _ in ()).throw(KeyError({PERSONAL!r}))\n"
            "helper_main()",
        ),
    ),
    "a module is missing": lambda m: m.setattr(
        audit.verify, "BOOTSTRAP", "import no_such_module_i11"),
}  # fmt: skip
#: a value that a helper's error could quote: never in the warning
PERSONAL = "anna.example@example.org"
#: what the warning tells of each (issue 11: the helper's stderr was discarded)
TOLD = {
    "cannot connect": "did not start; exit status 1; it said: InvalidCatalogNameError,"
                      " SQLSTATE 3D000)",
    "cannot start": "did not start; exit status 3)",
    "answers nonsense": "(JSONDecodeError; exit status 0)",
    "dies after one answer": "(ended; exit status 1; it said: SystemExit, status 1)",
    "fails on a row": "(ended; exit status 1; it said: KeyError)",
    "a module is missing": "(did not start; exit status 1; it said: ModuleNotFoundError)",
}  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("broken", list(BROKEN_HELPERS))
async def test_a_failing_helper_leaves_its_segments_to_this_process(
    pg_log: tuple[AuditLog, str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    log, url, ids = pg_log
    here = _helpers_first(monkeypatch, 1, alone=False)
    if broken == "cannot connect":
        dsn = log._backend.dsn  # type: ignore[attr-defined]
        monkeypatch.setattr(log._backend, "dsn", dsn.rsplit("/", 1)[0] + "/no_such_db_i11")
    else:
        BROKEN_HELPERS[broken](monkeypatch)
    report = await log.verify()
    assert (report.ok, report.entries, report.checkpoints) == (True, 41, 5)
    assert here  # checked here after all
    warned = [r.getMessage() for r in caplog.records if r.name == "audit.verify"]
    assert len(warned) == 1 and warned[0].startswith("audit verify helper ended early (")
    assert TOLD[broken] in warned[0]  # why, from its exit status and its stderr
    assert "no_such_db_i11" not in caplog.text  # the helper's address is not logged
    assert PERSONAL not in caplog.text and "no_such_module" not in caplog.text
    await sql(url, "UPDATE audit_entry SET body = replace(body::text, 'new note', 'NEW')::json"
                   " WHERE seq = 30")  # fmt: skip
    report = await log.verify()
    assert (report.ok, report.first_bad, report.entries) == (False, ids[29], 29)
