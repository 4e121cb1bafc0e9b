"""The gateway when its audit store fails, through HTTP: PostgreSQL behind a loopback
proxy that is cut (tests/faultproxy.py; the shared server is never touched), SQLite where
the same fault exists there.

What is promised: a store that cannot take the intent is 503 ``audit_unavailable`` with
``Retry-After`` and nothing forwarded; a change that reached the upstream is never
answered other than 2xx or 504 (outcome unknown); what the store could not record is
reconciled once it is back; the reconciler outlives any failing tick; a customer's lock
is waited for a bounded time; one caller's unstorable entry fails no other caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit import AuditLog, Intent, rotate_master_key
from service.settings import Settings
from tests.audit.conftest import sql
from tests.faultproxy import FaultProxy
from tests.service.conftest import AUDITOR, EDITOR, Stack, make_stack

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LONG_AGO = "2020-01-01T00:00:00.000000Z"


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async with FaultProxy(5432) as running:
        yield running


@pytest.fixture
async def pg_name() -> AsyncIterator[str]:
    name = f"e2e_faults_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError):
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def proxied(proxy: FaultProxy, name: str) -> str:
    return f"postgresql+asyncpg://postgres@{proxy.url_host}/{name}"


def fast_reconcile(settings: Settings) -> Settings:
    """A reconcile tick every 0.1 s (audit.reconcile_seconds)."""
    return dataclasses.replace(settings, audit_reconcile_seconds=0.1)


def patient_fast(settings: Settings) -> Settings:
    return fast_reconcile(patient_keycom(settings))


async def until(check: Callable[..., Awaitable[bool]], *args: Any) -> None:
    """Poll ``check(*args)`` until it holds (at most 10 s)."""
    deadline = time.monotonic() + 10.0
    while not await check(*args):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def forwarded(stack: Stack, system: str, method: str, count: int) -> bool:
    return (await stack.stats(system)).get(method, 0) == count


async def all_closed_as(stack: Stack, intent_ids: list[str], outcome: str) -> bool:
    return all([await outcome_of(stack, i) == outcome for i in intent_ids])


async def logged(caplog: pytest.LogCaptureFixture, event: str) -> bool:
    return any(r.msg == event for r in caplog.records)


async def outcome_of(stack: Stack, intent_id: str) -> str | None:
    resp = await stack.client.get("/v1/audit", params={"limit": 500}, headers=AUDITOR)
    assert resp.status == 200
    for entry in (await resp.json())["entries"]:
        if entry["intent_id"] == intent_id:
            return str(entry["outcome"])
    return None


def patient_keycom(settings: Settings) -> Settings:
    """keycom waited for 60 s: a slow or hung request ends when the test says so."""
    upstreams = dict(settings.upstreams)
    upstreams["keycom"] = dataclasses.replace(upstreams["keycom"], timeout_seconds=60.0)
    return dataclasses.replace(settings, upstreams=upstreams)


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


@pytest.mark.postgres
async def test_postgres_down_is_503_with_retry_after_and_nothing_is_forwarded(
    aiohttp_client: Any, tmp_path: Path, proxy: FaultProxy, pg_name: str
) -> None:
    async for stack in make_stack(aiohttp_client, tmp_path, audit_url=proxied(proxy, pg_name)):
        await proxy.down()
        for attempt in range(2):  # the first finds its pooled connections cut
            resp = await stack.client.patch(
                "/v1/systems/billbee/customers/1002", json={"Tel1": f"+49 30 99887{attempt}"},
                headers=EDITOR,
            )  # fmt: skip
            assert resp.status == 503, await resp.text()
            assert (await resp.json())["code"] == "audit_unavailable"
            assert int(resp.headers["Retry-After"]) >= 1
        read = await stack.client.get("/v1/systems/keycom/customers/4001", headers=EDITOR)
        assert (read.status, (await read.json())["code"]) == (503, "audit_unavailable")
        assert (await stack.stats("billbee")).get("PUT", 0) == 0
        ready = await stack.client.get("/readyz")
        assert ready.status == 503
        await proxy.up()
        resp = await stack.client.patch(
            "/v1/systems/billbee/customers/1002", json={"Tel1": "+49 30 9988770"}, headers=EDITOR
        )
        assert resp.status == 200  # the store is back: so is the gateway


@pytest.mark.postgres
async def test_postgres_dying_while_changes_sit_at_the_upstream(
    aiohttp_client: Any, tmp_path: Path, proxy: FaultProxy, pg_name: str
) -> None:
    """8 PATCHes forwarded, then the store goes: keycom applies each, and each is
    answered 200 with X-Audit-Id of its intent (the answer does not wait for an applied
    outcome: docs/audit.md "Durability of an outcome"), never 500; the outcomes cannot
    be written, and once the store is back the reconciler re-reads keycom and records
    them as applied."""
    async for stack in make_stack(
        aiohttp_client, tmp_path, audit_url=proxied(proxy, pg_name), tweak=patient_fast
    ):
        await stack.fault("keycom", latency_ms=1500, methods=["PATCH"])
        customers = [str(100_001 + i) for i in range(8)]
        patches = [
            asyncio.create_task(stack.client.patch(
                f"/v1/systems/keycom/customers/{c}", json={"note": f"call back {i}"},
                headers=EDITOR,
            ))
            for i, c in enumerate(customers)
        ]  # fmt: skip
        await until(forwarded, stack, "keycom", "PATCH", len(customers))
        await proxy.down()
        answers = await asyncio.gather(*patches)
        for resp in answers:
            body = await resp.json()
            assert (resp.status, body.get("applied")) == (200, True), body
            assert resp.headers["X-Audit-Id"] == body["audit_id"]
        for i, c in enumerate(customers):  # keycom did apply them
            assert stack.store("keycom").get(int(c))["note"] == f"call back {i}"
        await asyncio.sleep(0.3)  # a few reconcile ticks fail while the store is down
        await proxy.up()
        intent_ids = [r.headers["X-Audit-Id"] for r in answers]
        await until(all_closed_as, stack, intent_ids, "applied")
        verify = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
        assert verify["ok"] is True


async def test_sqlite_failing_after_the_forward_is_answered_then_reconciled(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """The same promise on SQLite: the store breaks (its table gone, as a lost volume
    would) while a change sits at keycom; the change is answered as applied, and its
    intent is reconciled as applied once the store is back."""
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    async for stack in make_stack(aiohttp_client, tmp_path, audit_url=url, tweak=patient_fast):
        await stack.fault("keycom", latency_ms=800, methods=["PATCH"])
        patch = asyncio.create_task(stack.client.patch(
            "/v1/systems/keycom/customers/4001", json={"note": "call back"}, headers=EDITOR
        ))  # fmt: skip
        await until(forwarded, stack, "keycom", "PATCH", 1)
        await sql(url, "ALTER TABLE audit_entry RENAME TO audit_entry_gone")
        resp = await patch
        body = await resp.json()
        assert (resp.status, body["applied"]) == (200, True), body
        assert stack.store("keycom").get(4001)["note"] == "call back"
        await sql(url, "ALTER TABLE audit_entry_gone RENAME TO audit_entry")
        await until(all_closed_as, stack, [resp.headers["X-Audit-Id"]], "applied")


async def test_the_reconciler_outlives_a_failing_tick_and_shutdown_closes_the_log(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tick fails (here: the master key was rotated under the running replica, so a
    dangling intent's values cannot be opened for the re-read); the loop logs one line and
    goes on, closes the intent once it can, and the log is closed at shutdown."""
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    async for stack in make_stack(aiohttp_client, tmp_path, audit_url=url, tweak=fast_reconcile):
        master = stack.settings.master_key_bytes()
        other_key = os.urandom(32)
        crashed = await AuditLog.open(
            url, master_key=master, signing_key=stack.settings.signing_key_bytes()
        )
        dangling = await crashed.begin(Intent(
            actor="demo-editor", roles=("editor",), system="billbee", customer_id="1002",
            purpose="customer_service", request_id="crashed", action="update",
            changed=("Tel1",), before={"Tel1": "+49 30 0000000"}, after={"Tel1": "+49 1"},
            protected={"Tel1": "personal"}, policy_version="v",
        ))  # fmt: skip
        await crashed.close()
        with caplog.at_level(logging.WARNING, logger="gdpr_gateway.app"):
            await rotate_master_key(url, master, other_key)
            await sql(url, "UPDATE audit_open_intent SET created_at = $1", LONG_AGO)
            await until(logged, caplog, "audit_reconcile_failed")
        assert await outcome_of(stack, dangling) is None
        await rotate_master_key(url, other_key, master)
        await until(all_closed_as, stack, [dangling], "unknown")
        audit_log = stack.audit
        await stack.client.close()  # raises nothing, and the log is closed
        assert not await audit_log.ping()


@pytest.mark.postgres
async def test_a_hung_upstream_cannot_starve_the_lock_pool(
    aiohttp_client: Any, tmp_path: Path, proxy: FaultProxy, pg_name: str
) -> None:
    """More concurrent writes than lock connections, two hung at keycom: their customer
    locks sit on a shared lock session, not on lock connections, so the other customers'
    writes are served; a second write to a hung one's customer gets 503 with Retry-After
    in bounded time (nothing forwarded); the pool's use and the timeouts are on /metrics."""

    def small_pool(settings: Settings) -> Settings:
        return dataclasses.replace(
            patient_keycom(settings), audit_lock_connections=2, audit_lock_wait_seconds=0.5
        )

    async for stack in make_stack(
        aiohttp_client, tmp_path, audit_url=proxied(proxy, pg_name), tweak=small_pool
    ):
        await stack.fault("keycom", hang=2, methods=["PATCH"])
        hung = [
            asyncio.create_task(stack.client.patch(
                f"/v1/systems/keycom/customers/{c}", json={"note": "call back"},
                headers=EDITOR,
            ))
            for c in ("100001", "100002")
        ]  # fmt: skip
        await until(forwarded, stack, "keycom", "PATCH", 2)
        others = await asyncio.gather(*(
            stack.client.patch(f"/v1/systems/keycom/customers/{c}",
                               json={"note": "call back later"}, headers=EDITOR)
            for c in ("100003", "100004", "100005", "100001")  # last: a hung one's customer
        ))  # fmt: skip
        assert not any(task.done() for task in hung)
        assert [resp.status for resp in others[:3]] == [200, 200, 200]
        body = await others[3].json()
        assert (others[3].status, body["code"]) == (503, "audit_unavailable"), body
        assert int(others[3].headers["Retry-After"]) >= 1
        assert (await stack.stats("keycom")).get("PATCH", 0) == 5
        text = await (await stack.client.get("/metrics")).text()
        assert metric(text, "gdpr_gateway_audit_lock_connections", state="in_use") == 0
        assert metric(text, "gdpr_gateway_audit_lock_connections", state="max") == 2
        assert metric(text, "gdpr_gateway_audit_lock_timeouts_total", wait="connection") == 0
        assert metric(text, "gdpr_gateway_audit_lock_timeouts_total", wait="subject") == 1
        await stack.clear_faults("keycom")  # keycom drops the hung requests
        await asyncio.gather(*hung)


@pytest.mark.postgres
async def test_unstorable_refusals_do_not_fail_other_callers(
    aiohttp_client: Any, tmp_path: Path, proxy: FaultProxy, pg_name: str
) -> None:
    """Refused PATCHes whose ids PostgreSQL cannot hold (NUL, 6,000 characters), sent
    while 40 reads are in flight: every read is served, every PATCH is a 4xx problem,
    nothing is forwarded."""
    async for stack in make_stack(aiohttp_client, tmp_path, audit_url=proxied(proxy, pg_name)):
        reads = [
            asyncio.create_task(
                stack.client.get("/v1/systems/keycom/customers/4001", headers=EDITOR)
            )
            for _ in range(40)
        ]
        refusals = []
        while not all(r.done() for r in reads) and len(refusals) < 400:
            i = len(refusals)
            cid = f"x%00{i}" if i % 2 else f"{i}" + "7" * 6000
            refusals.append(asyncio.create_task(stack.client.patch(
                f"/v1/systems/keycom/customers/{cid}", json={"no_such_field": "x"},
                headers=EDITOR,
            )))  # fmt: skip
            await asyncio.sleep(0.001)
        assert [r.status for r in await asyncio.gather(*reads)] == [200] * 40
        assert len(refusals) >= 10  # they did overlap the reads
        for resp in await asyncio.gather(*refusals):
            assert 400 <= resp.status < 500, resp.status
            assert resp.content_type == "application/problem+json"
        assert (await stack.stats("keycom")).get("PATCH", 0) == 0
        verify = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
        assert verify["ok"] is True and verify["entries"] >= 40
