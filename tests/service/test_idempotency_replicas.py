"""``Idempotency-Key`` across two gateway replicas sharing one PostgreSQL database and one
set of emulators: a retry sent to the other replica gets the first answer; two replicas
given the same key at once forward once; a claim left by a replica that died is taken
over once it expires, never before; a keyed write while the store is down is 503 and
leaves no claim behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from audit.idempotency import ClaimState
from service.app import create_app
from service.demo_settings import demo_settings
from service.emulators import EmulatorCluster, emulators_of
from service.idempotency import fingerprint
from service.keys import AUDIT_KEY
from service.registry import SYSTEMS
from tests.faultproxy import FaultProxy
from tests.service.conftest import EDITOR, make_stack

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
KEYCOM = "/v1/systems/keycom/customers/4001"


@dataclasses.dataclass
class Replicas:
    a: TestClient[Any, Any]
    b: TestClient[Any, Any]
    cluster: EmulatorCluster

    async def patches(self) -> int:
        async with aiohttp.ClientSession() as session, session.get(
            f"{self.cluster.urls['keycom']}/_emulator/stats"
        ) as resp:
            return int((await resp.json())["requests"].get("PATCH", 0))

    async def fault(self, **plan: Any) -> None:
        async with aiohttp.ClientSession() as session, session.post(
            f"{self.cluster.urls['keycom']}/_emulator/faults", json=plan
        ) as resp:
            assert resp.status in (200, 201, 204)


@pytest.fixture
async def replicas(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Replicas]:
    name = f"idem_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    cluster = EmulatorCluster(base_port=0, rate_limit=False, systems=emulators_of(SYSTEMS))
    await cluster.start()
    try:
        settings = demo_settings(
            port=0,
            state_dir=tmp_path,
            upstream_urls=cluster.urls,
            audit_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
            master_key=os.urandom(32),
            signing_key=os.urandom(32),
            systems=SYSTEMS,
        )
        upstreams = {
            system: dataclasses.replace(up, rate_limit_per_second=None, timeout_seconds=2.0)
            for system, up in settings.upstreams.items()
        }
        settings = dataclasses.replace(
            settings, upstreams=upstreams, idempotency_wait_seconds=1.5
        )
        a = await aiohttp_client(create_app(settings, registry=CollectorRegistry(), migrate=True))
        b = await aiohttp_client(create_app(settings, registry=CollectorRegistry(), migrate=True))
        yield Replicas(a, b, cluster)
    finally:
        await cluster.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def keyed(key: str) -> dict[str, str]:
    return {**EDITOR, "Idempotency-Key": key}


async def test_a_retry_to_the_other_replica_gets_the_first_answer(replicas: Replicas) -> None:
    key = f"other-replica-{uuid.uuid4()}"
    first = await replicas.a.patch(KEYCOM, json={"note": "replica"}, headers=keyed(key))
    assert first.status == 200, await first.text()
    again = await replicas.b.patch(KEYCOM, json={"note": "replica"}, headers=keyed(key))
    assert again.status == 200
    assert await again.read() == await first.read()
    assert again.headers["X-Audit-Id"] == first.headers["X-Audit-Id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await replicas.patches() == 1


async def test_a_dropped_connection_retried_at_the_other_replica_applies_once(
    replicas: Replicas,
) -> None:
    """The client's timeout fires while replica a forwards (the upstream is slow); it
    retries at replica b, which waits for a's answer (or answers 409 meanwhile) and then
    replays it: one PATCH upstream."""
    await replicas.fault(methods=["PATCH"], latency_ms=500)
    key = f"dropped-{uuid.uuid4()}"
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:
        for attempt in range(12):
            target = replicas.a if attempt == 0 else replicas.b
            try:
                async with session.patch(
                    str(target.make_url(KEYCOM)), json={"note": "dropped"}, headers=keyed(key),
                    # the first attempt is dropped (its timeout fires mid-forward); the
                    # retries wait as a client would (a fixed short timeout made the test
                    # depend on the machine's speed: a loaded one timed every replay out)
                    timeout=aiohttp.ClientTimeout(total=0.2 if attempt == 0 else 10),
                ) as resp:  # fmt: skip
                    statuses.append(resp.status)
                    if resp.status == 200:
                        assert resp.headers["Idempotent-Replayed"] == "true"
                        break
            except TimeoutError:
                statuses.append(0)
            await asyncio.sleep(0.05)
    assert statuses[0] == 0 and statuses[-1] == 200, statuses
    assert await replicas.patches() == 1


async def test_the_same_key_at_both_replicas_at_once_forwards_once(replicas: Replicas) -> None:
    await replicas.fault(methods=["PATCH"], latency_ms=300)
    key = f"both-at-once-{uuid.uuid4()}"
    answers = await asyncio.gather(
        replicas.a.patch(KEYCOM, json={"note": "both"}, headers=keyed(key)),
        replicas.b.patch(KEYCOM, json={"note": "both"}, headers=keyed(key)),
    )
    assert [r.status for r in answers] == [200, 200]
    assert answers[0].headers["X-Audit-Id"] == answers[1].headers["X-Audit-Id"]
    assert await replicas.patches() == 1


async def test_a_dead_replicas_claim_blocks_until_it_expires(replicas: Replicas) -> None:
    """A claim whose owner died (written as a replica writes it, then abandoned) makes a
    retry wait, then 409 while it lasts; once it has expired, a retry takes it over and
    runs."""
    store = replicas.a.app[AUDIT_KEY].idempotency  # type: ignore[index]
    key_hash = store.key_hash("demo-editor", "dead-owner")
    print_ = fingerprint("PATCH", KEYCOM, {"note": "dead"})
    subject = ("keycom", "4001")
    claim = await store.claim(
        key_hash, print_, subject, claim_seconds=3600.0, retention_seconds=60.0
    )
    assert claim.state is ClaimState.CLAIMED
    resp = await replicas.b.patch(KEYCOM, json={"note": "dead"}, headers=keyed("dead-owner"))
    assert resp.status == 409
    assert (await resp.json())["code"] == "idempotency_in_progress"
    assert await replicas.patches() == 0
    # the same claim, expired: the retry takes it over
    other_hash = store.key_hash("demo-editor", "dead-owner-2")
    dead = await store.claim(
        other_hash, print_, subject, claim_seconds=0.0, retention_seconds=60.0
    )
    resp = await replicas.b.patch(KEYCOM, json={"note": "dead"}, headers=keyed("dead-owner-2"))
    assert resp.status == 200, await resp.text()
    assert await replicas.patches() == 1
    rows = await store._backend.fetchall(
        "SELECT owner, status FROM idempotency_key WHERE key_hash = ?", [other_hash]
    )
    assert rows[0][1] == 200 and rows[0][0] != dead.owner


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async with FaultProxy(5432) as running:
        yield running


async def test_a_keyed_write_while_the_store_is_down_is_503_and_runs_once_it_is_back(
    aiohttp_client: Callable[..., Any], tmp_path: Path, proxy: FaultProxy
) -> None:
    name = f"idem_down_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://postgres@{proxy.url_host}/{name}"
        async for stack in make_stack(aiohttp_client, tmp_path, audit_url=url):
            await proxy.down()
            for _attempt in range(2):  # the first finds its pooled connections cut
                resp = await stack.client.patch(
                    KEYCOM, json={"note": "store down"}, headers=keyed("while-down")
                )
                assert resp.status == 503, await resp.text()
                assert (await resp.json())["code"] == "audit_unavailable"
            assert (await stack.stats("keycom")).get("PATCH", 0) == 0
            await proxy.up()
            resp = await stack.client.patch(
                KEYCOM, json={"note": "store down"}, headers=keyed("while-down")
            )
            assert resp.status == 200, await resp.text()
            assert "Idempotent-Replayed" not in resp.headers
            assert (await stack.stats("keycom"))["PATCH"] == 1
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
