"""Three ``gdpr-gateway serve`` replicas on one PostgreSQL database, one set of emulators.

100 concurrent patches to one Billbee customer (whole-object PUT upstream), each setting
a different field or value, spread over the three replicas; one replica is SIGKILLed
while it holds the customer's lock with a change forwarded and not yet answered.

Billbee's emulator limits each key to 2 requests per second; 100 changes cost 300 calls
(read, conflict re-read, PUT), 150 s at that rate. So the emulators run with
``--no-rate-limit`` and the connectors with ``rate_limit_per_second: 1000``: what is
tested here is the lock, the chain and the reconciler, not the pacing (which
tests/upstreams/test_billbee_rate_limit.py covers). The reconciler runs every 0.5 s and
closes intents older than 2 s (``audit.reconcile_seconds``,
``audit.reconcile_min_age_seconds``), so that the killed replica's intent is closed
within the test rather than a minute later.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.cli import main as cli_main
from service.emulators.billbee import CREDENTIALS as BILLBEE_CREDENTIALS
from tests.service.chain import read_chain
from tests.service.processes import emulator_process, events, keys, serve_config, start_serve
from tests.service.test_demo_command import free_block

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "replica-test-editor-token"
CUSTOMER = "1002"
PATH = f"/v1/systems/billbee/customers/{CUSTOMER}"
CHANGES = 100
KILL_AFTER = 30  # answers before the kill


def change(i: int) -> tuple[str, str]:
    """The i-th patch: one of four fields, a value no other patch uses."""
    field = ("Name", "Email", "Tel1", "Tel2")[i % 4]
    value = {
        "Name": f"Replica Kunde {i:03d}",
        "Email": f"replica{i:03d}@example.com",
        "Tel1": f"+49 30 1000{i:03d}",
        "Tel2": f"+49 30 2000{i:03d}",
    }[field]
    return field, value


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh database of our own on the shared server (dropped afterwards)."""
    name = f"replicas_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture
def urls() -> Iterator[dict[str, str]]:
    with emulator_process("--no-rate-limit") as found:
        yield found


async def until(check: Any, what: str, seconds: float = 20.0) -> Any:
    for _ in range(int(seconds / 0.02)):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(what)


async def send(
    session: aiohttp.ClientSession, port: int, i: int, replica: int
) -> tuple[int, dict[str, Any] | None, str | None]:
    """One patch; (status, body, X-Audit-Id), status 0 when no answer came."""
    field, value = change(i)
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "X-Purpose": "customer_service",
        "X-Request-Id": f"r{replica}-p{i:03d}",
    }
    try:
        async with session.patch(
            f"http://127.0.0.1:{port}{PATH}", json={field: value}, headers=headers
        ) as resp:
            return resp.status, await resp.json(), resp.headers.get("X-Audit-Id")
    except aiohttp.ClientError:
        return 0, None, None


async def test_three_replicas_lose_no_update_and_survive_a_sigkill(
    database: str, urls: dict[str, str], tmp_path: Path
) -> None:
    audit_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    config = serve_config(
        tmp_path, urls, 0,
        audit={"url": audit_url, "reconcile_seconds": 0.5, "reconcile_min_age_seconds": 2},
        auth={"tokens": [{
            "name": "replica-test", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
            "roles": ["editor"], "systems": ["billbee"],
        }]},
        upstreams={"billbee": {"rate_limit_per_second": 1000, "rate_limit_burst": 100}},
        shutdown={"drain_seconds": 0},
        workers=1,  # one process per replica: the one SIGKILLed is the one that dies
    )
    assert await asyncio.to_thread(cli_main, ["db", "upgrade", "--config", str(config)]) == 0
    ports = [free_block() for _ in range(3)]
    procs = [start_serve(config, port=port) for port in ports]
    killed: int | None = None
    try:
        db = await asyncpg.connect(ADMIN_DSN.replace("/test", f"/{database}"))
        creds = BILLBEE_CREDENTIALS
        basic = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
        billbee = aiohttp.ClientSession(urls["billbee"], headers={
            "X-Billbee-Api-Key": creds["api_key"], "Authorization": f"Basic {basic}",
        })
        clients = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )
        try:
            async with billbee, clients:
                for port, proc in zip(ports, procs, strict=True):
                    await until(lambda p=port, pr=proc: ready(clients, p, pr), "a replica is ready")

                tasks = [
                    asyncio.create_task(send(clients, ports[i % 3], i, i % 3))
                    for i in range(CHANGES)
                ]
                await until(
                    lambda: answered(tasks, KILL_AFTER), "the first answers came", seconds=60
                )
                # the next PUT hangs: its replica holds the lock with an intent and no outcome
                puts = await emulator_count(billbee, "PUT")
                await fault(billbee, "POST", {"hang": 1, "methods": ["PUT"]})
                await until(lambda: more_puts(billbee, puts), "a PUT hangs")
                holder = await until(lambda: lasting_intent(db), "the hung change's intent")
                killed = int(holder[1])  # request ids are r<replica>-p<change>
                procs[killed].send_signal(signal.SIGKILL)
                procs[killed].wait(timeout=10)
                await fault(billbee, "DELETE")  # the hung PUT is dropped, never applied

                results = await asyncio.gather(*tasks)
                # the survivors close the dead replica's intent
                await until(lambda: no_open_intents(db), "the dangling intent is reconciled")
                async with billbee.get(f"/api/v1/customers/{CUSTOMER}") as resp:
                    final = (await resp.json())["Data"]
        finally:
            await db.close()
    finally:
        codes, errs = [], []
        for proc in procs:
            code, err = stop(proc)
            codes.append(code)
            errs.append(err)

    assert killed is not None
    assert [c for i, c in enumerate(codes) if i != killed] == [0, 0]

    # every answer is a 200 (applied) or a 409 with its audit entry; only the dead
    # replica's callers may have had no answer
    chain = await read_chain(audit_url, *keys(tmp_path))
    outcomes = {i: o[0] for i, o in chain.outcomes().items()}
    for i, (status, body, audit_id) in enumerate(results):
        if status == 0:
            assert i % 3 == killed, f"change {i}: no answer from a live replica"
        elif status == 409:
            assert body is not None and body["code"] == "edit_conflict"
            refusal = outcomes[str(audit_id)]
            assert (refusal["outcome"], refusal["problem_code"]) == ("rejected", "edit_conflict")
        else:
            assert status == 200 and body is not None and body["applied"] is True, (i, status)
    applied_requests = {f"r{i % 3}-p{i:03d}" for i, r in enumerate(results) if r[0] == 200}
    assert len(applied_requests) > KILL_AFTER

    # one chain holds every replica's entries, verifies, and every intent has one outcome
    assert chain.report.ok, chain.report.reason
    assert {e["request_id"][:2] for e in chain.entries} == {"r0", "r1", "r2"}
    assert chain.dangling() == []
    intents = chain.intents()
    hung = [i for i, e in intents.items() if e["request_id"] == holder]
    assert len(hung) == 1 and outcomes[hung[0]]["outcome"] == "unknown"  # never landed
    assert outcomes[hung[0]]["reason"].startswith("reconciled")
    applied = [e for i, e in intents.items() if outcomes[i]["outcome"] == "applied"]
    assert {e["request_id"] for e in applied} == applied_requests

    # 0 lost updates: the record holds, per field, the last applied change to it
    expected: dict[str, Any] = {}
    for entry in applied:  # in chain order, which under the lock is the order of the PUTs
        expected.update(entry["after"])
    assert {k: final[k] for k in expected} == expected
    assert any(e["event"] == "audit_intents_reconciled" for err in errs for e in events(err))


async def ready(
    session: aiohttp.ClientSession, port: int, proc: subprocess.Popen[str]
) -> bool:
    assert proc.poll() is None, "a replica exited at start"
    try:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def answered(tasks: list[asyncio.Task[Any]], count: int) -> bool:
    return sum(t.done() for t in tasks) >= count


async def emulator_count(billbee: aiohttp.ClientSession, method: str) -> int:
    async with billbee.get("/_emulator/stats") as resp:
        return int((await resp.json())["requests"].get(method, 0))


async def more_puts(billbee: aiohttp.ClientSession, before: int) -> bool:
    return await emulator_count(billbee, "PUT") > before


async def fault(billbee: aiohttp.ClientSession, method: str, plan: Any = None) -> None:
    async with billbee.request(method, "/_emulator/faults", json=plan) as resp:
        assert resp.status == 200


async def open_intent(db: asyncpg.Connection) -> str | None:
    """The newest open intent. One customer, one lock: one change in flight; the change
    before it may still show as open for the few milliseconds until its ``applied``
    outcome, queued before its lock was released, is committed (docs/audit.md)."""
    rows = await db.fetch(
        "SELECT e.body->>'request_id' FROM audit_open_intent o"
        " JOIN audit_entry e ON e.audit_id = o.audit_id ORDER BY e.seq DESC LIMIT 1"
    )
    return str(rows[0][0]) if rows else None


async def lasting_intent(db: asyncpg.Connection) -> str | None:
    """The open intent that is still the open one half a second later: the hung PUT's.
    (The PUT counted first may be one sent just before the fault, whose intent closes at
    once; a change under the customer's lock that stays open is the hung one.)"""
    first = await open_intent(db)
    if first is None:
        return None
    await asyncio.sleep(0.5)
    return first if await open_intent(db) == first else None


async def no_open_intents(db: asyncpg.Connection) -> bool:
    return int(await db.fetchval("SELECT count(*) FROM audit_open_intent")) == 0


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err
