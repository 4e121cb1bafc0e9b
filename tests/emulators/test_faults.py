"""Fault injection, stats counting and the loopback-only admin endpoints, per system."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.emulators import (
    FAULTS_KEY,
    STATS_KEY,
    STORE_KEY,
    FaultPlan,
    FaultPlanError,
    create_emulator,
    is_loopback_peer,
)
from service.registry import SYSTEMS

from .conftest import BILLBEE_AUTH, KEYCOM_AUTH, SEDONA_AUTH, TIMELOG_AUTH, ClientFactory

READ = {
    "timelog": ("/demo/api/v1/customer/3001", TIMELOG_AUTH),
    "billbee": ("/api/v1/customers/1002", BILLBEE_AUTH),
    "sedona": ("/api/customer/2001", SEDONA_AUTH),
    "keycom": ("/customers/4001/", KEYCOM_AUTH),
}
ERROR_SHAPE = {
    "timelog": {"Code", "Details", "DeveloperNote", "Message", "Parameters", "Url"},
    "billbee": {"ErrorCode", "ErrorMessage", "ErrorDescription", "Data"},
    "sedona": {"Message"},
    "keycom": {"details"},
}
KEYCOM_PATCH = ("/customers/4001/", {"note": "fault test"})


@pytest.fixture
async def fresh_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose connections are never reused (a dropped connection shows)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield http


@pytest.mark.parametrize("system", SYSTEMS)
async def test_status_fault_for_the_next_n_requests(
    aiohttp_client: ClientFactory, system: str
) -> None:
    client = await aiohttp_client(create_emulator(system, rate_limit=False))
    path, headers = READ[system]
    resp = await client.post("/_emulator/faults", json={"status": 503, "count": 2})
    assert resp.status == 200
    for _ in range(2):
        faulted = await client.get(path, headers=headers)
        assert faulted.status == 503
        assert set(await faulted.json()) == ERROR_SHAPE[system]
    assert (await client.get(path, headers=headers)).status == 200
    assert client.app[STATS_KEY].requests("GET") == 3


async def test_status_fault_with_retry_after(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.post("/_emulator/faults", json={"status": 429, "retry_after": 3})
    resp = await client.get(*READ["keycom"][:1], headers=KEYCOM_AUTH)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "3"


async def test_methods_filter(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.post("/_emulator/faults", json={"status": 500, "count": 1, "methods": ["PATCH"]})
    assert (await client.get("/customers/4001/", headers=KEYCOM_AUTH)).status == 200
    path, body = KEYCOM_PATCH
    assert (await client.patch(path, json=body, headers=KEYCOM_AUTH)).status == 500
    assert (await client.patch(path, json=body, headers=KEYCOM_AUTH)).status == 200


async def test_fault_plan_given_at_construction(aiohttp_client: ClientFactory) -> None:
    app = create_emulator("sedona", faults=FaultPlan(status=502, count=1))
    client = await aiohttp_client(app)
    path, headers = READ["sedona"]
    assert (await client.get(path, headers=headers)).status == 502
    assert (await client.get(path, headers=headers)).status == 200


async def test_latency(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.post("/_emulator/faults", json={"latency_ms": 400})
    with pytest.raises(TimeoutError):
        await client.get(
            "/customers/4001/", headers=KEYCOM_AUTH, timeout=aiohttp.ClientTimeout(total=0.1)
        )
    await client.delete("/_emulator/faults")
    assert (await client.get("/customers/4001/", headers=KEYCOM_AUTH)).status == 200


async def test_connection_reset(
    aiohttp_client: ClientFactory, fresh_http: aiohttp.ClientSession
) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.post("/_emulator/faults", json={"reset": 1})
    path, body = KEYCOM_PATCH
    before = client.app[STORE_KEY].get(4001)
    url = str(client.make_url(path))
    with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        await fresh_http.patch(url, json=body, headers=KEYCOM_AUTH)
    assert client.app[STORE_KEY].get(4001) == before
    async with fresh_http.patch(url, json=body, headers=KEYCOM_AUTH) as resp:
        assert resp.status == 200


async def test_reset_of_an_idempotent_request_needs_two_to_show(
    aiohttp_client: ClientFactory, fresh_http: aiohttp.ClientSession
) -> None:
    """aiohttp's client retries an idempotent request once after a dropped connection."""
    client = await aiohttp_client(create_emulator("timelog"))
    await client.post("/_emulator/faults", json={"reset": 2})
    url = str(client.make_url(READ["timelog"][0]))
    with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        await fresh_http.get(url, headers=TIMELOG_AUTH)
    assert client.app[STATS_KEY].requests("GET") == 2


async def test_hang_until_client_timeout_then_cleared(
    aiohttp_client: ClientFactory, fresh_http: aiohttp.ClientSession
) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.post("/_emulator/faults", json={"hang": 1})
    path, body = KEYCOM_PATCH
    url = str(client.make_url(path))
    with pytest.raises(TimeoutError):
        await fresh_http.patch(
            url, json=body, headers=KEYCOM_AUTH, timeout=aiohttp.ClientTimeout(total=0.3)
        )
    await client.delete("/_emulator/faults")
    async with fresh_http.patch(url, json=body, headers=KEYCOM_AUTH) as resp:
        assert resp.status == 200


async def test_hung_request_is_dropped_when_the_emulator_stops(
    fresh_http: aiohttp.ClientSession,
) -> None:
    app = create_emulator("keycom", faults=FaultPlan(hang=1))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=30)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    path, body = KEYCOM_PATCH
    pending = asyncio.create_task(
        fresh_http.patch(f"http://127.0.0.1:{port}{path}", json=body, headers=KEYCOM_AUTH)
    )
    for _ in range(500):
        if app[STATS_KEY].total:
            break
        await asyncio.sleep(0.01)
    await runner.cleanup()
    with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        await pending


async def test_stats_count_api_requests_only(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.get("/customers/4001/", headers=KEYCOM_AUTH)
    await client.get("/customers/4001/")  # refused with 401: still received
    await client.patch("/customers/4001/", json={"note": "x"}, headers=KEYCOM_AUTH)
    await client.put("/customers/4001/", json={}, headers=KEYCOM_AUTH)  # 405, still counted
    await client.get("/_emulator/faults")
    resp = await client.get("/_emulator/stats")
    assert resp.status == 200
    stats = await resp.json()
    assert stats["requests"]["GET"] == 2
    assert stats["requests"]["PATCH"] == 1
    assert stats["requests"]["PUT"] == 1
    assert stats["requests"]["POST"] == 0
    assert stats["requests"]["DELETE"] == 0


async def test_reset_restores_store_stats_and_initial_faults(
    aiohttp_client: ClientFactory,
) -> None:
    client = await aiohttp_client(
        create_emulator("keycom", faults=FaultPlan(status=500, count=1, methods=["DELETE"]))
    )
    before = client.app[STORE_KEY].get(4001)
    await client.patch("/customers/4001/", json={"note": "changed"}, headers=KEYCOM_AUTH)
    await client.post("/_emulator/faults", json={"latency_ms": 5})
    assert client.app[STORE_KEY].get(4001) != before
    resp = await client.post("/_emulator/reset")
    assert resp.status == 200
    assert client.app[STORE_KEY].get(4001) == before
    assert client.app[STATS_KEY].total == 0
    assert client.app[FAULTS_KEY].plan == FaultPlan(status=500, count=1, methods=["DELETE"])


@pytest.mark.parametrize(
    "body",
    [{"status": 99}, {"count": -1}, {"latency_ms": "5"}, {"hang": True}, {"methods": "PUT"},
     {"surprise": 1}, [1], {"retry_after": -2}],
)
async def test_bad_fault_plans_are_400(aiohttp_client: ClientFactory, body: Any) -> None:
    client = await aiohttp_client(create_emulator("sedona"))
    resp = await client.post("/_emulator/faults", json=body)
    assert resp.status == 400
    assert "error" in await resp.json()
    assert client.app[FAULTS_KEY].plan == FaultPlan()


async def test_admin_body_not_json_is_400(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_emulator("sedona"))
    resp = await client.post("/_emulator/faults", data=b"{")
    assert resp.status == 400


def test_fault_plan_validation_in_python() -> None:
    with pytest.raises(FaultPlanError):
        FaultPlan(status=700, count=1)
    assert FaultPlan.from_json({"status": 503}).count == 1
    assert FaultPlan(methods=frozenset({"put"})).methods == frozenset({"PUT"})


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.8", False), ("192.0.2.2", False), ("::ffff:10.0.0.1", False),
     ("2001:db8::1", False), ("", False), (None, False), ("not-an-ip", False)],
)
def test_loopback_decision(peer: str | None, allowed: bool) -> None:
    assert is_loopback_peer(peer) is allowed


def _non_loopback_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent for a UDP connect
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if is_loopback_peer(address) else address


async def test_admin_refused_for_a_non_loopback_peer() -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    app = create_emulator("keycom")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            for method, path in [("GET", "stats"), ("POST", "reset"), ("DELETE", "faults")]:
                async with http.request(method, f"http://{address}:{port}/_emulator/{path}") as r:
                    assert r.status == 403
            async with http.get(f"http://{address}:{port}/customers/4001/",
                                headers=KEYCOM_AUTH) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("system", SYSTEMS)
async def test_malformed_answer(aiohttp_client: ClientFactory, system: str) -> None:
    client = await aiohttp_client(create_emulator(system, rate_limit=False))
    path, headers = READ[system]
    await client.post("/_emulator/faults", json={"malformed": 1})
    resp = await client.get(path, headers=headers)
    assert resp.status == 200
    with pytest.raises(ValueError):
        await resp.json()
    assert (await client.get(path, headers=headers)).status == 200


@pytest.mark.parametrize("fault", ["reset", "hang", "malformed"])
async def test_after_write_applies_the_write_then_loses_its_answer(
    aiohttp_client: ClientFactory, fresh_http: aiohttp.ClientSession, fault: str
) -> None:
    client = await aiohttp_client(create_emulator("keycom"))
    await client.post(
        "/_emulator/faults", json={fault: 1, "after_write": True, "methods": ["PATCH"]}
    )
    assert (await (await client.get("/_emulator/faults")).json())["after_write"] is True
    path, body = KEYCOM_PATCH
    url = str(client.make_url(path))
    timeout = aiohttp.ClientTimeout(total=0.3)
    if fault == "malformed":
        async with fresh_http.patch(url, json=body, headers=KEYCOM_AUTH) as resp:
            assert resp.status == 200
            with pytest.raises(ValueError):
                await resp.json()
    else:
        with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
                            TimeoutError)):
            await fresh_http.patch(url, json=body, headers=KEYCOM_AUTH, timeout=timeout)
    stored = client.app[STORE_KEY].get(4001)
    assert stored is not None and stored["note"] == body["note"]  # applied all the same
    await client.delete("/_emulator/faults")


def test_after_write_must_be_a_boolean() -> None:
    with pytest.raises(FaultPlanError, match="after_write"):
        FaultPlan.from_json({"reset": 1, "after_write": "yes"})
