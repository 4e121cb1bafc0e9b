"""Fixtures of the audit tests: one store fixture over both real backends.

SQLite: a fresh file per test. PostgreSQL: the server at 127.0.0.1:5432 (database
``test``); one uniquely named database per test session, migrated once, emptied before
each test and dropped at the end. PostgreSQL is skipped, loudly, only when no server
answers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from audit import AuditLog, Intent, upgrade
from audit.chain import GENESIS

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")

EMAIL_BEFORE = "zq.before.person@example.org"
EMAIL_AFTER = "zq.after.person@example.org"
PHONE_AFTER = "+49 170 5550123"


async def _admin_connect() -> tuple[Any, str] | None:
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database=PG_DB,
                                         timeout=5)  # fmt: skip
        except (TimeoutError, OSError, asyncpg.PostgresError):
            continue
        return conn, user
    return None


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str | None]:
    """URL of a fresh database for this session, or None when PostgreSQL is absent."""

    async def create() -> tuple[str, str, str] | None:
        found = await _admin_connect()
        if found is None:
            return None
        conn, user = found
        name = f"audit_test_{uuid.uuid4().hex[:12]}"
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{name}"
        await upgrade(url)
        return url, name, user

    made = asyncio.run(create())
    if made is None:
        yield None
        return
    url, name, _user = made
    yield url

    async def drop() -> None:
        found = await _admin_connect()
        if found is None:
            return
        conn, _ = found
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


REPO_ROOT = Path(__file__).resolve().parents[2]


async def crash_writer(
    url: str, keys: dict[str, bytes], count: int, mode: str
) -> asyncio.subprocess.Process:
    """The crash tests' writer process (``tests/audit/crash_writer.py``), its ids on stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.audit.crash_writer", url,
        base64.b64encode(keys["master_key"]).decode(),
        base64.b64encode(keys["signing_key"]).decode(), str(count), mode,
        stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
    )  # fmt: skip


async def printed_then_killed(proc: asyncio.subprocess.Process, lines: int) -> list[str]:
    """The first ``lines`` ids the writer printed; then it is killed (SIGKILL, no close)."""
    assert proc.stdout is not None
    try:
        return [
            (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip()
            for _ in range(lines)
        ]
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


@pytest.fixture
def dsn(pg_base_url: str | None) -> str:
    """The test database's URL for asyncpg itself (the lock tests' own connections)."""
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    return pg_base_url.replace("postgresql+asyncpg", "postgresql")


async def reset_pg(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "TRUNCATE audit_entry, audit_checkpoint, audit_subject_key, audit_open_intent"
        )
        await conn.execute(
            "UPDATE audit_head SET seq = 0, hash = $1, checkpoint_seq = 0, checkpoint_at = NULL",
            GENESIS,
        )
    finally:
        await conn.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
async def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_base_url: str | None
) -> AsyncIterator[str]:
    """An empty, migrated audit store on the backend of the parameter."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
        await upgrade(url)
        yield url
        return
    if pg_base_url is None:
        pytest.skip(
            "!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE: the PostgreSQL audit tests are"
            " SKIPPED (start it with `make postgres`) !!!"
        )
    await reset_pg(pg_base_url)
    yield pg_base_url


@pytest.fixture
def keys() -> dict[str, bytes]:
    return {"master_key": os.urandom(32), "signing_key": os.urandom(32)}


@pytest.fixture
async def audit_log(store_url: str, keys: dict[str, bytes]) -> AsyncIterator[AuditLog]:
    log = await AuditLog.open(store_url, **keys)
    try:
        yield log
    finally:
        await log.close()


def make_intent(
    customer_id: str = "1002", *, actor: str = "alice", action: str = "update",
    email_after: str = EMAIL_AFTER, request_id: str = "req-1", system: str = "billbee",
) -> Intent:  # fmt: skip
    return Intent(
        actor=actor,
        roles=("editor",),
        system=system,
        customer_id=customer_id,
        purpose="customer_service",
        request_id=request_id,
        action=action,
        changed=("Email", "Phone", "Note"),
        before={"Email": EMAIL_BEFORE, "Phone": None, "Note": "old note"},
        after={"Email": email_after, "Phone": PHONE_AFTER, "Note": "new note"},
        protected={"Email": "personal", "Phone": "restricted", "Note": "internal"},
        policy_version="sha256:policy-v1",
    )


async def sql(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL on the store directly, outside the audit log (tampering, inspection)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]

        def run() -> list[tuple[Any, ...]]:
            con = sqlite3.connect(path, isolation_level=None)
            try:
                return con.execute(statement.replace("$1", "?").replace("$2", "?"),
                                   params).fetchall()  # fmt: skip
            finally:
                con.close()

        return await asyncio.to_thread(run)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return [tuple(r) for r in await conn.fetch(statement, *params)]
    finally:
        await conn.close()


async def advisory_sessions(dsn: str, key: int, *, granted: bool) -> int:
    """Sessions of this test's database holding (``granted``) or waiting for advisory
    lock ``key`` (PostgreSQL)."""
    rows = await sql(
        dsn,
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND l.granted = $2 AND d.datname = current_database()"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
        key, granted,
    )  # fmt: skip
    return int(rows[0][0])


async def granted_advisory_locks(dsn: str) -> int:
    """Advisory locks granted in this test's database (other databases' are not counted)."""
    rows = await sql(
        dsn,
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    return int(rows[0][0])


async def until_no_advisory_locks(dsn: str) -> None:
    """Until this test's database holds no advisory lock, 10 s at most (TimeoutError): a
    released customer lock's unlock is sent, not waited for (docs/audit.md), so the server
    drops it a moment after the release returns."""
    async with asyncio.timeout(10):
        while await granted_advisory_locks(dsn):  # noqa: ASYNC110 - the server's state, polled
            await asyncio.sleep(0.02)
