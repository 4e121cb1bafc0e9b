"""A crash between the audit intent and its outcome is closed on the next start."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from audit import AuditLog, Intent
from service.app import create_app, forward_bound
from service.demo_settings import demo_settings
from service.emulators import STORE_KEY, EmulatorCluster
from service.registry import SYSTEMS
from tests.service.conftest import AUDITOR

LANDED_PHONE = "+49 30 2468024"


def intent(customer: str, phone: str) -> Intent:
    return Intent(
        actor="demo-editor", roles=("editor",), system="billbee", customer_id=customer,
        purpose="customer_service", request_id=f"crash-{customer}", action="update",
        changed=("Tel1",), before={"Tel1": "+49 30 0000000"}, after={"Tel1": phone},
        protected={"Tel1": "personal"}, policy_version="v-test",
    )


async def test_dangling_intents_are_closed_by_re_reading_the_upstream(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    master, signing = os.urandom(32), os.urandom(32)
    # a process wrote two intents, forwarded the first, and died before any outcome
    crashed = await AuditLog.open(url, master_key=master, signing_key=signing, create=True)
    landed = await crashed.begin(intent("1002", LANDED_PHONE))
    lost = await crashed.begin(intent("100001", "+49 30 1357135"))
    await crashed.close()

    cluster = EmulatorCluster(base_port=0, rate_limit=False)
    await cluster.start()
    try:
        store = cluster.apps["billbee"][STORE_KEY]
        record = store.get(1002)
        record["Tel1"] = LANDED_PHONE  # the first forward did reach billbee
        store.put(1002, record)
        settings = demo_settings(
            port=0, state_dir=tmp_path, upstream_urls=cluster.urls, audit_url=url,
            master_key=master, signing_key=signing,
        )
        settings = dataclasses.replace(settings, upstreams={
            name: dataclasses.replace(up, rate_limit_per_second=None)
            for name, up in settings.upstreams.items()
        })
        registry = CollectorRegistry()
        client = await aiohttp_client(create_app(settings, registry=registry, migrate=True))
        resp = await client.get("/v1/audit", params={"system": "billbee"}, headers=AUDITOR)
        entries = (await resp.json())["entries"]
        outcomes = {e["intent_id"]: e["outcome"] for e in entries if e["phase"] == "outcome"}
        assert outcomes == {landed: "applied", lost: "unknown"}
        verify = await (await client.get("/v1/audit/verify", headers=AUDITOR)).json()
        assert verify["ok"] is True
        # what the chart's AuditIntentsLeftDangling alert reads
        reconciled = registry.get_sample_value("gdpr_gateway_audit_intents_reconciled_total")
        assert reconciled == 2.0
    finally:
        await cluster.stop()


def test_forward_bound_covers_every_attempt_of_the_slowest_upstream(tmp_path: Path) -> None:
    settings = demo_settings(
        port=0, state_dir=tmp_path, upstream_urls=dict.fromkeys(SYSTEMS, "http://127.0.0.1:1"),
        audit_url="sqlite+aiosqlite:///x.db", master_key=os.urandom(32),
        signing_key=os.urandom(32),
    )
    slowest = max(settings.upstreams.values(), key=lambda u: u.timeout_seconds)
    assert forward_bound(settings) >= 2 * slowest.timeout_seconds * (slowest.max_retries + 1)


async def test_with_several_workers_a_fresh_intent_is_left_to_the_worker_forwarding_it(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    # one process on SQLite closes every open intent at start (nothing of its own is in
    # flight yet); a worker of `serve --workers 2` must not: the other worker may be
    # forwarding it right now
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    master, signing = os.urandom(32), os.urandom(32)
    other_worker = await AuditLog.open(url, master_key=master, signing_key=signing, create=True)
    in_flight = await other_worker.begin(intent("100001", "+49 30 1357135"))
    settings = demo_settings(
        port=0, state_dir=tmp_path, upstream_urls=dict.fromkeys(SYSTEMS, "http://127.0.0.1:1"),
        audit_url=url, master_key=master, signing_key=signing,
    )
    registry = CollectorRegistry()
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, workers=2), registry=registry)
    )
    assert registry.get_sample_value("gdpr_gateway_audit_intents_reconciled_total") == 0.0
    resp = await client.get("/v1/audit", params={"system": "billbee"}, headers=AUDITOR)
    entries = (await resp.json())["entries"]
    assert [e["audit_id"] for e in entries] == [in_flight]
    assert not [e for e in entries if e["phase"] == "outcome"]
    await other_worker.close()
