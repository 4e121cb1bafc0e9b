"""PostgreSQL's query columns since migration 0006 (audit/migrations/versions/0006_…): the
writer sends them with the body it built (no trigger parses the body on insert), a row
inserted without them still gets them from its body, verify compares every row's columns
with its hashed body, four indexes are partial - and the queries that need them still
use them - and the migration keeps every row's values both ways. All on the real server,
each test in a scratch database of its own."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import audit.entries
from audit import AuditLog, Outcome, upgrade
from audit.backend import QUERY_COLUMNS
from audit.reader import Reader
from audit.resolve import _RESOLVED_ALREADY, _UNRESOLVED
from audit.retention import _counts
from audit.review import Review
from audit.store_pg import PgBackend
from tests.audit.conftest import make_intent
from tests.audit.test_migrations import _to_revision

pytestmark = pytest.mark.postgres

#: every row whose columns are not what the body gives (what 0002's trigger computed)
DISAGREEING = "SELECT seq FROM audit_entry WHERE " + " OR ".join(  # noqa: S608 - fixed names
    f"{c} IS DISTINCT FROM body::jsonb ->> '{c}'" for c in QUERY_COLUMNS
)
UNSENT = "audit_entry_query_columns_unsent"
PARTIAL = ("ix_audit_entry_intent", "ix_audit_entry_outcome", "ix_audit_entry_key",
           "ix_audit_entry_problem")  # fmt: skip


@asynccontextmanager
async def scratch(pg_base_url: str | None, revision: str = "head") -> AsyncIterator[str]:
    """A new database migrated to ``revision`` (its URL), dropped afterwards."""
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    admin = await asyncpg.connect(pg_base_url.replace("postgresql+asyncpg", "postgresql"))
    name = f"audit_cols_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        await (upgrade(url) if revision == "head" else _to_revision(url, revision))
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def q(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return [tuple(r) for r in await conn.fetch(statement, *params)]
    finally:
        await conn.close()


def keys() -> dict[str, bytes]:
    return {"master_key": os.urandom(32), "signing_key": os.urandom(32)}


async def every_kind(url: str, secret: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """One entry of every kind the log writes, and the log verifies."""
    async with await AuditLog.open(url, **secret) as gone:  # a process that died mid-change
        await gone.begin(make_intent("4"))
    who = {"actor": "po", "roles": ("privacy_officer",), "request_id": "r"}
    async with await AuditLog.open(url, **secret) as log:
        intent = await log.begin(make_intent("1"))
        await log.finish(intent, Outcome("applied", upstream_status=200))
        await log.record(make_intent("2"), Outcome("rejected", problem_code="field_not_allowed"))
        await log.reveal(intent, reason="check", **who)
        await log.export_subject("billbee", "1", **who)
        await log.erase("billbee", "2", reason="Art. 17", **who)
        past = audit.entries.iso(datetime.now(UTC) - timedelta(days=60))
        with monkeypatch.context() as m:  # a change whose values' retention has ended
            m.setattr(audit.entries, "now_iso", lambda: past)
            old = await log.begin(dataclasses.replace(make_intent("3"), retention_days=30))
            await log.finish(old, Outcome("applied"))
        assert len((await log.expire()).audit_ids) == 1
        assert await log.reconcile() == 1  # the dead process's intent: closed as unknown

        async def applied(*_: object) -> str:
            return "applied"

        assert await log.resolve_unknowns(applied, window_seconds=3600, pause_seconds=0) == 1
        assert (await log.verify()).ok


async def test_every_kind_of_entry_gets_from_the_writer_the_columns_its_body_gives(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the trigger for rows without columns switched off, every kind of entry still
    lands with exactly the columns 0002's trigger computed from the same body."""
    async with scratch(pg_base_url) as url:
        await q(url, f"ALTER TABLE audit_entry DISABLE TRIGGER {UNSENT}")
        await every_kind(url, keys(), monkeypatch)
        rows = await q(url, "SELECT action, phase, outcome, problem_code, intent_id IS NOT NULL,"
                            " key_id IS NOT NULL FROM audit_entry ORDER BY seq")  # fmt: skip
        assert await q(url, DISAGREEING) == []
        kinds = {(r[0], r[1]) for r in rows}
        assert {("update", "intent"), ("update", "outcome"), ("update", "resolution"),
                ("reveal", "outcome"), ("export", "outcome"), ("erase", "outcome"),
                ("expire", "outcome")} <= kinds  # fmt: skip
        assert ("rejected", "field_not_allowed") in {(r[2], r[3]) for r in rows}
        assert {r[4] for r in rows} == {True, False} and {r[5] for r in rows} == {True, False}
        assert await q(url, "SELECT count(*) FROM audit_entry WHERE audit_id IS NULL") == [(0,)]


async def test_a_row_inserted_without_its_columns_gets_them_from_its_body(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer of an earlier release (a rolling upgrade) inserts only the body: the
    trigger, which runs only then, fills the columns, and the log verifies."""
    secret = keys()
    async with scratch(pg_base_url) as url:
        monkeypatch.setattr(PgBackend, "sends_query_columns", False)
        async with await AuditLog.open(url, **secret) as log:
            intent_id = await log.begin(make_intent("7"))
            await log.finish(intent_id, Outcome("applied"))
        monkeypatch.undo()
        async with await AuditLog.open(url, **secret) as log:  # and one of this release
            await log.begin(make_intent("8"))
            assert (await log.verify()).ok
            assert [e["phase"] for e in await log.following(intent_id)] == ["outcome"]
        assert await q(url, DISAGREEING) == []
        assert await q(url, "SELECT count(*) FROM audit_entry WHERE customer_id IS NULL") == [(0,)]


@pytest.mark.parametrize(
    ("column", "value"),
    [("customer_id", "someone-else"), ("intent_id", None), ("key_id", "k-other"),
     ("time", "1999-01-01T00:00:00.000000Z"), ("audit_id", "0192f0aa-0000-7000-8000-000000000000")],
)  # fmt: skip
async def test_verify_names_the_entry_whose_query_column_was_altered(
    pg_base_url: str | None, column: str, value: str | None
) -> None:
    """A column that disagrees with the hashed body would hide the entry from the
    queries (a subject's export, the review's join of an outcome, retention's count):
    verify reports it at that entry, and an intact log verifies."""
    async with scratch(pg_base_url) as url, await AuditLog.open(url, **keys()) as log:
        first = await log.begin(make_intent("1"))
        outcome = await log.finish(first, Outcome("applied"))
        await log.record(make_intent("2"), Outcome("applied"))
        assert (await log.verify()).ok
        target = outcome if column == "intent_id" else first
        # the update trigger would set it from the body again: someone switched it off
        await q(url, "ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_query_columns")
        tamper = f"UPDATE audit_entry SET {column} = $1 WHERE audit_id = $2"  # noqa: S608
        await q(url, tamper.replace("audit_id = $2", "body::jsonb ->> 'audit_id' = $2"),
                value, target)  # fmt: skip
        report = await log.verify()
        assert not report.ok
        assert report.first_bad == target
        assert "query columns do not match" in (report.reason or "")
        assert report.entries == (1 if target == outcome else 0)  # the rows before it


async def test_verify_reports_the_first_break_whether_a_hash_or_a_column(
    pg_base_url: str | None,
) -> None:
    async with scratch(pg_base_url) as url, await AuditLog.open(url, **keys()) as log:
        ids = [await log.record(make_intent(str(n)), Outcome("applied")) for n in range(5)]
        await q(url, "ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_query_columns")
        await q(url, "UPDATE audit_entry SET actor = 'mallory' WHERE seq = 4")
        (body,) = (await q(url, "SELECT body::text FROM audit_entry WHERE seq = 2"))[0]
        await q(url, "UPDATE audit_entry SET body = $1 WHERE seq = 2",
                body.replace('"actor":"alice"', '"actor":"bob"'))  # fmt: skip
        report = await log.verify()
        assert (report.first_bad, report.entries) == (ids[1], 1)
        assert "hash does not match" in (report.reason or "")
        await q(url, "UPDATE audit_entry SET body = $1 WHERE seq = 2", body)
        report = await log.verify()
        assert (report.first_bad, report.entries) == (ids[3], 3)
        assert "query columns" in (report.reason or "")


def _reader(backend: PgBackend) -> Reader:
    return Reader(backend, master_key=b"\0" * 32, public_key=b"\0" * 32)  # masked reads only


def _index_defs(rows: Sequence[tuple[Any, ...]]) -> dict[str, str]:
    return {name: definition for name, definition in rows}


INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_entry'"
TRIGGERS = (
    "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
    " WHERE tgrelid = 'audit_entry'::regclass AND NOT tgisinternal ORDER BY tgname"
)


async def _answers(url: str) -> list[Any]:
    """What the review and reader queries answer (masked), to compare across revisions."""
    backend = await PgBackend.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        review, reader = Review(backend), _reader(backend)
        intents = [r[0] for r in await backend.fetchall(
            "SELECT audit_id FROM audit_entry WHERE phase = 'intent' ORDER BY seq")]  # fmt: skip
        return [
            (await review.changes(limit=100)).changes,
            (await review.changes(customer_id="1", oldest_first=True)).changes,
            (await reader.query(outcome="applied", limit=100)).entries,
            (await reader.query(outcome="rejected")).entries,
            [await reader.following(i) for i in intents],
            [r[:4] for r in await reader.open_intents()],
        ]
    finally:
        await backend.close()


async def test_0006_keeps_the_rows_and_the_answers_and_goes_back(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at 0005 with rows of every kind: after 0006 the rows keep their columns,
    the triggers and partial indexes are 0006's, the queries answer the same, new rows
    bring their columns; back at 0005 the rows stay and a new one gets its columns from
    the trigger on insert again."""
    columns = f"SELECT seq, {', '.join(QUERY_COLUMNS)} FROM audit_entry ORDER BY seq"  # noqa: S608
    secret = keys()
    async with scratch(pg_base_url, "0005") as url:
        await every_kind(url, secret, monkeypatch)
        before, answers = await q(url, columns), await _answers(url)
        whole = _index_defs(await q(url, INDEXES))
        assert not any("WHERE" in d for d in whole.values())

        await _to_revision(url, "0006")  # 0008 drops one of its partial indexes
        assert await q(url, columns) == before
        assert await _answers(url) == answers
        indexes = _index_defs(await q(url, INDEXES))
        for name in PARTIAL:
            assert indexes[name].endswith("IS NOT NULL)"), indexes[name]
            assert indexes[name].split(" WHERE ")[0] == whole[name]
        assert {k: v for k, v in indexes.items() if k not in PARTIAL} == {
            k: v for k, v in whole.items() if k not in PARTIAL}  # fmt: skip
        triggers = dict(await q(url, TRIGGERS))
        assert "BEFORE UPDATE ON" in triggers["audit_entry_query_columns"]
        assert "BEFORE INSERT ON" in triggers[UNSENT] and "audit_id IS NULL" in triggers[UNSENT]
        async with await AuditLog.open(url, **secret) as log:
            added = await log.record(make_intent("1"), Outcome("rejected", problem_code="x"))
            assert (await log.verify()).ok
        assert await q(url, DISAGREEING) == []

        await _to_revision(url, "0005", down=True)
        after = await q(url, columns)
        assert after[: len(before)] == before and after[-1][1] == added
        assert _index_defs(await q(url, INDEXES)) == whole
        assert list(dict(await q(url, TRIGGERS))) == ["audit_entry_query_columns"]
        monkeypatch.setattr(PgBackend, "sends_query_columns", False)  # that release's writer
        async with await AuditLog.open(url, **secret) as log:
            await log.record(make_intent("9"), Outcome("applied"))
            assert (await log.verify()).ok
        assert await q(url, DISAGREEING) == []
        assert await _answers(url) != answers  # the new rows are found


class _Recording(PgBackend):
    """The real backend, keeping the SQL of every read it is asked for."""

    seen: list[tuple[str, list[Any]]]

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.seen.append((sql, list(params)))
        return await super().fetchall(sql, params)


async def test_the_queries_of_the_partial_indexes_use_them(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each query the log sends on ``intent_id``, ``outcome`` or ``key_id`` plans with
    its partial index, as a generic plan (the statement prepared once, as asyncpg does)
    and with sequential scans priced out (as on a large table): PostgreSQL proves
    ``IS NOT NULL`` from the strict ``=`` / ``IN`` itself, so no query had to change."""
    async with scratch(pg_base_url) as url:
        await every_kind(url, keys(), monkeypatch)
        dsn = url.replace("postgresql+asyncpg", "postgresql")
        made = await PgBackend.connect(dsn)
        backend = _Recording(made._pool, made._locks, made._shared)
        backend.seen = []
        try:
            intent = (await backend.fetchall(
                "SELECT audit_id FROM audit_entry WHERE phase = 'intent' ORDER BY seq"))[0][0]
            reader, review = _reader(backend), Review(backend)
            await reader.following(intent)
            await reader.query(outcome="applied")
            await review.changes()  # its outcomes: intent_id IN (...)
            key_ids = [r[0] for r in await backend.fetchall(
                "SELECT key_id FROM audit_subject_key")]  # fmt: skip
            await _counts(key_ids[:3], backend)  # retention: the entries a key sealed
            backend.seen += [(_UNRESOLVED, ["2000", 10]), (_RESOLVED_ALREADY, [intent])]
        finally:
            await made.close()
        uses = {"intent_id": "ix_audit_entry_intent", "outcome": "ix_audit_entry_outcome",
                "key_id": "ix_audit_entry_key"}  # fmt: skip
        conn = await asyncpg.connect(dsn, statement_cache_size=0)
        try:
            await conn.execute("SET enable_seqscan = off")
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            checked = set()
            for sql, params in backend.seen:
                where = sql.split(" WHERE ", 1)[-1]
                wanted = [i for c, i in uses.items() if f"{c} = " in where or f"{c} IN" in where]
                if not wanted:
                    continue
                plan = await _generic_plan(conn, sql, params)
                for index in wanted:
                    assert index in plan, (index, sql, plan)
                    checked.add(index)
            assert checked == set(uses.values())
        finally:
            await conn.close()


async def _generic_plan(conn: Any, sql: str, params: list[Any]) -> str:
    from audit.store_pg import numbered

    await conn.execute("DEALLOCATE ALL")
    types = ", ".join("bigint" if isinstance(p, int) else "text" for p in params)
    await conn.execute(f"PREPARE probe ({types}) AS {numbered(sql)}" if params
                       else f"PREPARE probe AS {numbered(sql)}")  # fmt: skip
    literals = ", ".join(str(p) if isinstance(p, int) else "'" + p.replace("'", "''") + "'"
                         for p in params)  # fmt: skip
    rows = await conn.fetch(f"EXPLAIN EXECUTE probe({literals})" if params
                            else "EXPLAIN EXECUTE probe")  # fmt: skip
    return "\n".join(r[0] for r in rows)
