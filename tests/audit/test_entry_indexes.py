"""``audit_entry``'s indexes since migrations 0008 and 0009 (audit/migrations/versions/), on
both stores: every query of the review, the reader, retention, erasure, resolve and
verify plans with the index it needs (SQLite: ``EXPLAIN QUERY PLAN`` - it keeps no
statistics, as the product runs it; PostgreSQL: the generic plan of the prepared
statement with sequential scans priced out, as on a large table), so a case fails when
its index is gone or no longer usable; the indexes the migrations leave are the models';
0008 and 0009 keep the rows and the answers of a store holding entries, and go back."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex

from audit import AuditLog, Outcome, upgrade
from audit.backend import QUERY_COLUMNS, Backend
from audit.connect import connect_backend
from audit.errors import EntryNotFound
from audit.keyring import ERASED_SINCE
from audit.models import AuditEntry
from audit.reader import Reader
from audit.resolve import _RESOLVED_ALREADY, _UNRESOLVED
from audit.retention import _counts
from audit.review import Review
from audit.verify_segment import READ
from tests.audit.conftest import make_intent, sql
from tests.audit.test_migrations import _to_revision
from tests.audit.test_pg_query_columns import _generic_plan, every_kind, keys, q

ID, SUBJECT, ACTOR = "ux_audit_entry_audit_id", "ix_audit_entry_subject", "ix_audit_entry_actor"
TIME, OUTCOME = "ix_audit_entry_time", "ix_audit_entry_outcome"
SYSTEM = "ix_audit_entry_system"
#: PostgreSQL's time index, which 0010 left as it was (the models give SQLite's)
PG_TIME = "create index ix_audit_entry_time on audit_entry (time)"
#: PostgreSQL, a system and a customer: on a table this small (no statistics) its generic
#: plan prices both indexes the same; on a large one it takes the subject's (0.7 ms for
#: a page at 400,000 entries in ``bench.review_bench``, where the scope's index would read
#: most of a system; docs/performance.md, "The audit review's slow queries")
SUBJECT_OR_SYSTEM = f"{SUBJECT}|{SYSTEM}"
INTENT, KEY = "ix_audit_entry_intent", "ix_audit_entry_key"
#: by ``seq``, in its order (the primary key: SQLite's rowid, PostgreSQL's pkey), no sort
BY_SEQ = "seq"
#: PostgreSQL chooses by its statistics: any index, no sequential scan
ANY = "any index"
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@dataclass
class Ctx:
    backend: Backend
    reader: Reader
    review: Review
    intent: str


Run = Callable[[Ctx], Awaitable[object]]
_DAY = date.today()
_SINCE, _UNTIL = datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)


async def _key_ids(c: Ctx) -> object:
    rows = await c.backend.fetchall("SELECT key_id FROM audit_subject_key")
    return await _counts([r[0] for r in rows][:3], c.backend)


async def _large_scope_trends(c: Ctx) -> object:
    """The trends of a scope with many entries (as if: the threshold is 0)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr("audit.review.FEW_ENTRIES", 0)
        return await c.review.trends(_DAY - timedelta(days=29), _DAY, systems={"billbee"})


async def _open_intent(c: Ctx) -> object:
    with suppress(EntryNotFound):  # closed by now: the query is what counts
        await c.reader.open_intent(c.intent)
    return None


#: name: (what sends the queries, the index of each ``audit_entry`` query it sends in
#: order - one name: every query - or per store)
CASES: dict[str, tuple[Run, Any]] = {
    "an entry by id (get, reveal, resolve)": (lambda c: c.reader.row(c.intent, None), [ID]),
    "verify: the first bad entry's system": (lambda c: c.backend.fetchall(
        "SELECT system FROM audit_entry WHERE audit_id = ?", [c.intent]), [ID]),
    "open intents (reconcile)": (lambda c: c.reader.open_intents(), [ID]),
    "an open intent (finish after a restart)": (_open_intent, [ID]),
    "the outcome and resolution of an intent": (lambda c: c.reader.following(c.intent), [INTENT]),
    "a subject's entries (Art. 15 export)": (lambda c: c.reader.of_subject("billbee", "1"),
                                             {"sqlite": [SUBJECT],
                                              "postgresql": [SUBJECT_OR_SYSTEM]}),
    "list: system and customer": (lambda c: c.reader.query(system="billbee", customer_id="1"),
                                  {"sqlite": [SUBJECT], "postgresql": [SUBJECT_OR_SYSTEM]}),
    "list: a customer within a scope": (lambda c: c.reader.query(
        customer_id="1", systems={"billbee", "keycom"}), [SUBJECT]),
    # 0009: the customer leads the subject's index
    "list: a customer, no system": (lambda c: c.reader.query(customer_id="1"), [SUBJECT]),
    "list: actor": (lambda c: c.reader.query(actor="alice"), [ACTOR]),
    "list: outcome": (lambda c: c.reader.query(outcome="rejected"), [OUTCOME]),
    "list: time range": (lambda c: c.reader.query(since=_SINCE, until=_UNTIL), [TIME]),
    # 0009: each system of a scope by ix_audit_entry_system, merged (audit/scope.py)
    "list: a scope alone": (lambda c: c.reader.query(systems={"billbee"}), [SYSTEM]),
    "list: a scope of two systems": (lambda c: c.reader.query(systems={"billbee", "keycom"}),
                                     [SYSTEM]),
    "changes, and their outcomes": (lambda c: c.review.changes(), [BY_SEQ, INTENT]),
    "changes: a scope alone": (lambda c: c.review.changes(systems={"billbee"}),
                               [SYSTEM, INTENT]),
    "changes: a scope of two systems": (lambda c: c.review.changes(
        systems={"billbee", "keycom"}, oldest_first=True), [SYSTEM, INTENT]),
    "changes: system and customer": (lambda c: c.review.changes(
        system="billbee", customer_id="1"),
        {"sqlite": [SUBJECT, INTENT], "postgresql": [SUBJECT_OR_SYSTEM, INTENT]}),
    "changes: a customer within a scope": (lambda c: c.review.changes(
        customer_id="1", systems={"billbee"}),
        {"sqlite": [SUBJECT, INTENT], "postgresql": [SUBJECT_OR_SYSTEM, INTENT]}),
    "changes: a customer, no system": (lambda c: c.review.changes(customer_id="1"),
                                       [SUBJECT, INTENT]),
    "changes: actor": (lambda c: c.review.changes(actor="alice"), [ACTOR, INTENT]),
    "trends": (lambda c: c.review.trends(_DAY - timedelta(days=29), _DAY), [TIME]),
    # SQLite: a scope of few entries by its index (counted there first), else the range
    "trends: a scope": (lambda c: c.review.trends(
        _DAY - timedelta(days=29), _DAY, systems={"billbee"}),
        {"sqlite": [SYSTEM, SYSTEM], "postgresql": [ANY]}),
    "trends: a scope of many entries": (_large_scope_trends,
                                        {"sqlite": [SYSTEM, TIME], "postgresql": [ANY]}),
    "resolve: unknown outcomes not resolved": (lambda c: c.backend.fetchall(
        _UNRESOLVED, ["2000-01-01T00:00:00", 100]), [f"{OUTCOME} {INTENT}"]),
    "resolve: resolved meanwhile": (lambda c: c.backend.fetchall(_RESOLVED_ALREADY, [c.intent]),
                                    [INTENT]),
    "retention: the entries a key sealed": (_key_ids, [KEY]),
    "erasures by other processes (keyring)": (lambda c: c.backend.fetchall(ERASED_SINCE, [1]),
                                              [BY_SEQ]),
    "verify: the chain": (lambda c: c.backend.fetchall(READ, [0, 1000]), [BY_SEQ]),
    "verify: a checkpoint's entry": (lambda c: c.backend.fetchall(
        "SELECT audit_id FROM audit_entry WHERE seq = ?", [2]), [BY_SEQ]),
}  # fmt: skip


async def _fill(url: str, secret: dict[str, bytes] | None = None) -> None:
    """An entry of every kind, and 40 more changes, for all the cases."""
    secret = keys() if secret is None else secret
    with pytest.MonkeyPatch.context() as m:
        await every_kind(url, secret, m)
    async with await AuditLog.open(url, **secret) as log:
        for n in range(40):
            await log.finish(await log.begin(make_intent(str(n % 7))), Outcome("applied"))


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('indexes') / 'audit.db'}"
    asyncio.run(upgrade(url))
    asyncio.run(_fill(url))
    return url


@contextmanager
def _pg_scratch(pg_base_url: str | None) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    admin = pg_base_url.replace("postgresql+asyncpg", "postgresql")
    name = f"audit_ix_{uuid.uuid4().hex[:10]}"
    asyncio.run(q(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield pg_base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(q(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def postgresql_store(pg_base_url: str | None) -> Iterator[str]:
    """A database of its own (the session's is emptied by other tests), never analysed
    by autovacuum while the module runs: statistics of the tiny table would flip the
    generic plans to the primary key, which says nothing of a real store's."""
    with _pg_scratch(pg_base_url) as url:
        asyncio.run(upgrade(url))
        asyncio.run(q(url, "ALTER TABLE audit_entry SET (autovacuum_enabled = false)"))
        asyncio.run(_fill(url))
        yield url


def _store(kind: str, request: pytest.FixtureRequest) -> str:
    """Each kind's store, made once for the module whatever order the tests run in (the
    tests are not coroutines: they take it lazily, then run their own loop)."""
    return str(request.getfixturevalue(f"{kind}_store"))


async def _plans(url: str, run: Run) -> list[tuple[str, str]]:
    """(sql, plan) of every ``audit_entry`` query that ``run`` sends."""
    backend = await connect_backend(url)
    seen: list[tuple[str, list[Any]]] = []
    fetchall = backend.fetchall

    async def recording(sql: str, params: Any = ()) -> Any:
        seen.append((sql, list(params)))
        return await fetchall(sql, params)

    backend.fetchall = recording  # type: ignore[method-assign]
    try:
        intent = (
            await fetchall("SELECT audit_id FROM audit_entry WHERE phase = 'intent' ORDER BY seq")
        )[0][0]
        reader = Reader(backend, master_key=b"\0" * 32, public_key=b"\0" * 32)
        await run(Ctx(backend, reader, Review(backend), intent))
    finally:
        await backend.close()
    seen = [(s, p) for s, p in seen if "audit_entry" in s]
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split(":///", 1)[1])
        try:
            return [(s, " | ".join(r[3] for r in con.execute(f"EXPLAIN QUERY PLAN {s}", p)))
                    for s, p in seen]  # fmt: skip
        finally:
            con.close()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"),
                                 statement_cache_size=0)  # fmt: skip
    try:
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        return [(s, await _generic_plan(conn, s, p)) for s, p in seen]
    finally:
        await conn.close()


def _uses(kind: str, sql: str, plan: str, wanted: str) -> bool:
    if kind == "sqlite":
        if wanted == BY_SEQ:  # the rowid's range, or its order with no sort
            return "INTEGER PRIMARY KEY" in plan or (
                "SCAN audit_entry" in plan and "TEMP B-TREE FOR ORDER BY" not in plan
                and "ORDER BY seq" in sql)  # fmt: skip
        return "SCAN audit_entry" not in plan and all(
            f"INDEX {name} " in plan for name in wanted.split())
    if "Seq Scan on audit_entry" in plan:
        return False
    if wanted == ANY:
        return True
    names = ["audit_entry_pkey"] if wanted == BY_SEQ else wanted.split()
    return all(re.search(rf"(using|Index Scan on) ({name})\b", plan) for name in names)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("case", list(CASES))
def test_each_query_uses_the_index_it_needs(
    kind: str, case: str, request: pytest.FixtureRequest
) -> None:
    run, wanted = CASES[case]
    wanted = wanted[kind] if isinstance(wanted, dict) else wanted
    plans = asyncio.run(_plans(_store(kind, request), run))
    assert plans, case
    if len(wanted) == 1:
        wanted = wanted * len(plans)
    assert len(plans) == len(wanted), [s for s, _ in plans]
    for (statement, plan), index in zip(plans, wanted, strict=True):
        assert _uses(kind, statement, plan, index), (index, statement, plan)


def _normal(ddl: str) -> str:
    """An index's DDL in one form: as SQLAlchemy compiles it, SQLite keeps it, or
    PostgreSQL's ``pg_indexes`` says it."""
    ddl = re.sub(r"\s+", " ", ddl.replace('"', "").replace("public.", "")).strip().lower()
    ddl = ddl.replace(" using btree", "")
    return re.sub(r" where \((.*)\)$", r" where \1", ddl)


async def _indexes(url: str) -> dict[str, str]:
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split(":///", 1)[1])
        try:
            rows = con.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'audit_entry' AND sql IS NOT NULL"
            ).fetchall()
        finally:
            con.close()
    else:
        rows = await q(
            url,
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'audit_entry' AND indexname <> 'audit_entry_pkey'",
        )
    return {name: _normal(sql) for name, sql in rows}  # fmt: skip


@pytest.mark.parametrize("kind", STORES)
def test_the_migrated_indexes_are_the_models(kind: str, request: pytest.FixtureRequest) -> None:
    """What alembic's comparison of the models with the migrations does not look at: the
    ``WHERE`` of a partial index, on each store."""
    url = _store(kind, request)
    dialect = sqlite.dialect() if kind == "sqlite" else postgresql.dialect()
    models = {ix.name: _normal(str(CreateIndex(ix).compile(dialect=dialect)))
              for ix in AuditEntry.__table__.indexes}  # type: ignore[attr-defined]  # fmt: skip
    if kind == "postgresql":  # 0010 made SQLite's cover the trends, the models say so
        models[TIME] = PG_TIME
    assert asyncio.run(_indexes(url)) == models
    assert sum(" where " in d for d in models.values()) == 3


@pytest.mark.parametrize("index", [ID, SUBJECT, ACTOR, TIME, OUTCOME, INTENT, KEY])
def test_a_case_fails_without_its_index(
    index: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The check above is not vacuous: on a copy of the SQLite store without ``index``,
    no query that needs it plans with it any more."""
    copy = tmp_path / "audit.db"
    shutil.copy(_store("sqlite", request).split(":///", 1)[1], copy)
    with sqlite3.connect(copy) as con:
        con.execute(f"DROP INDEX {index}")
    needing = [(run, w["sqlite"] if isinstance(w, dict) else w) for run, w in CASES.values()]
    needing = [(run, w) for run, w in needing if any(index in name for name in w)]
    assert needing
    for run, wanted in needing:
        plans = asyncio.run(_plans(f"sqlite+aiosqlite:///{copy}", run))
        if len(wanted) == 1:
            wanted = wanted * len(plans)
        assert not all(_uses("sqlite", s, p, w) for (s, p), w in zip(plans, wanted, strict=True))


PARTIAL = {"ix_audit_entry_intent": "intent_id", "ix_audit_entry_outcome": "outcome",
           "ix_audit_entry_key": "key_id"}  # fmt: skip
PROBLEM = "ix_audit_entry_problem"


async def _answers(url: str) -> list[Any]:
    """What the review and reader queries answer (masked), to compare across revisions."""
    backend = await connect_backend(url)
    try:
        review = Review(backend)
        reader = Reader(backend, master_key=b"\0" * 32, public_key=b"\0" * 32)
        intents = [r[0] for r in await backend.fetchall(
            "SELECT audit_id FROM audit_entry WHERE phase = 'intent' ORDER BY seq")]  # fmt: skip
        keyed = await backend.fetchall("SELECT key_id FROM audit_subject_key ORDER BY key_id")
        return [
            (await review.changes(limit=100)).changes,
            (await review.changes(customer_id="1", systems={"billbee"})).changes,
            (await reader.query(outcome="rejected")).entries,
            (await reader.query(outcome="applied", systems={"billbee"})).entries,
            [await reader.following(i) for i in intents],
            [r[:4] for r in await reader.open_intents()],
            await _counts([r[0] for r in keyed], backend),
            await backend.fetchall(_UNRESOLVED, ["2000-01-01T00:00:00", 100]),
        ]
    finally:
        await backend.close()


async def _round_trip(url: str) -> None:
    columns = f"SELECT seq, {', '.join(QUERY_COLUMNS)} FROM audit_entry ORDER BY seq"  # noqa: S608
    secret = keys()
    await _to_revision(url, "0007")
    with pytest.MonkeyPatch.context() as m:
        await every_kind(url, secret, m)
    before, answers, whole = await sql(url, columns), await _answers(url), await _indexes(url)
    assert PROBLEM in whole and len(before) > 10

    await _to_revision(url, "0008")
    assert await sql(url, columns) == before
    assert await _answers(url) == answers
    indexes = await _indexes(url)
    assert PROBLEM not in indexes
    for name, column in PARTIAL.items():
        assert indexes[name].endswith(f" where {column} is not null"), indexes[name]
        assert indexes[name].split(" where ")[0] == whole[name].split(" where ")[0]
    assert {k: v for k, v in indexes.items() if k not in PARTIAL} == {
        k: v for k, v in whole.items() if k not in (*PARTIAL, PROBLEM)}  # fmt: skip
    async with await AuditLog.open(url, **secret) as log:
        added = await log.record(make_intent("1"), Outcome("rejected", problem_code="x"))
        assert (await log.verify()).ok

    await _to_revision(url, "0007", down=True)
    assert await _indexes(url) == whole
    after = await sql(url, columns)
    assert after[: len(before)] == before and after[-1][1] == added
    async with await AuditLog.open(url, **secret) as log:
        await log.record(make_intent("9"), Outcome("applied"))
        assert (await log.verify()).ok
    assert await _answers(url) != answers  # the new rows are found


@pytest.mark.parametrize("kind", STORES)
def test_0008_keeps_the_rows_and_the_answers_and_goes_back(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store at 0007 with entries of every kind: after 0008 the rows and what the
    queries answer are the same, three indexes are partial (on PostgreSQL they already
    were), the problem code's is gone, new rows are written and the log verifies; back
    at 0007 the indexes are 0007's again and the rows stay."""
    if kind == "sqlite":
        asyncio.run(_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"))
        return
    with _pg_scratch(request.getfixturevalue("pg_base_url")) as url:
        asyncio.run(_round_trip(url))


async def _answers_0009(url: str) -> list[Any]:
    """What the queries that 0009 plans anew answer."""
    backend = await connect_backend(url)
    try:
        review = Review(backend)
        reader = Reader(backend, master_key=b"\0" * 32, public_key=b"\0" * 32)
        both = {"billbee", "keycom"}
        return [
            await reader.of_subject("billbee", "1"),
            (await reader.query(customer_id="1")).entries,
            (await reader.query(system="billbee", customer_id="1")).entries,
            (await reader.query(systems={"billbee"}, limit=3)).entries,
            (await reader.query(systems=both, limit=1000)).entries,
            (await review.changes(customer_id="1")).changes,
            (await review.changes(systems=both, limit=1000)).changes,
            (await review.changes(systems=both, oldest_first=True, limit=5)).changes,
            await review.trends(_DAY - timedelta(days=1), _DAY, systems=both),
        ]
    finally:
        await backend.close()


async def _round_trip_0009(url: str) -> None:
    columns = f"SELECT seq, {', '.join(QUERY_COLUMNS)} FROM audit_entry ORDER BY seq"  # noqa: S608
    secret = keys()
    await _to_revision(url, "0008")
    await _fill(url, secret)
    before, answers, old = await sql(url, columns), await _answers_0009(url), await _indexes(url)
    assert old[SUBJECT].endswith("(system, customer_id, seq)") and SYSTEM not in old

    await _to_revision(url, "0009")
    assert await sql(url, columns) == before
    assert await _answers_0009(url) == answers
    indexes = await _indexes(url)
    assert indexes[SUBJECT].endswith("(customer_id, system, seq)")
    assert indexes[SYSTEM].endswith("(system, seq)")
    assert {k: v for k, v in indexes.items() if k not in (SUBJECT, SYSTEM)} == {
        k: v for k, v in old.items() if k != SUBJECT}  # fmt: skip
    async with await AuditLog.open(url, **secret) as log:
        added = await log.record(make_intent("1"), Outcome("rejected", problem_code="x"))

    await _to_revision(url, "0008", down=True)
    assert await _indexes(url) == old
    after = await sql(url, columns)
    assert after[: len(before)] == before and after[-1][1] == added
    assert await _answers_0009(url) != answers  # the new row is found


@pytest.mark.parametrize("kind", STORES)
def test_0009_keeps_the_rows_and_the_answers_and_goes_back(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store at 0008 with entries of every kind: after 0009 the rows and what the
    queries it plans anew answer are the same, the subject's index leads with the
    customer and the scope's is there; back at 0008 the indexes are 0008's again and
    the rows stay."""
    if kind == "sqlite":
        asyncio.run(_round_trip_0009(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"))
        return
    with _pg_scratch(request.getfixturevalue("pg_base_url")) as url:
        asyncio.run(_round_trip_0009(url))
