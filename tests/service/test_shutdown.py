"""The shutdown sequence in-process: drain (503, still serving), finish, flush, sign."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from service.app import create_app
from service.demo_settings import demo_settings
from service.emulators import STORE_KEY, EmulatorCluster
from service.settings import Settings
from service.shutdown import run_server
from tests.service.chain import read_chain
from tests.service.conftest import EDITOR
from tests.service.test_demo_command import free_block


@dataclasses.dataclass
class Running:
    url: str
    cluster: EmulatorCluster
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def fault(self, system: str, **plan: Any) -> None:
        async with aiohttp.ClientSession() as s, s.post(
            f"{self.cluster.urls[system]}/_emulator/faults", json=plan
        ) as resp:
            assert resp.status == 200

    async def until_arrived(self, system: str, method: str, count: int) -> None:
        for _ in range(500):
            if await self.arrived(system, method) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{method} never reached {system}")

    async def arrived(self, system: str, method: str) -> int:
        async with aiohttp.ClientSession() as s, s.get(
            f"{self.cluster.urls[system]}/_emulator/stats"
        ) as resp:
            return int((await resp.json())["requests"].get(method, 0))


async def fresh(url: str) -> aiohttp.ClientSession:
    """A client that opens a new connection for every request."""
    return aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(force_close=True))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    cluster = EmulatorCluster(base_port=0, rate_limit=False)
    await cluster.start()
    try:
        settings = demo_settings(
            port=0, state_dir=tmp_path, upstream_urls=cluster.urls,
            audit_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
            master_key=os.urandom(32), signing_key=os.urandom(32),
        )
        settings = dataclasses.replace(
            settings,
            upstreams={
                name: dataclasses.replace(up, rate_limit_per_second=None, timeout_seconds=2.0,
                                          max_retries=0)
                for name, up in settings.upstreams.items()
            },
            shutdown_drain_seconds=0.6,
            shutdown_grace_seconds=0.3,
        )
        port = free_block()
        stop = asyncio.Event()
        task = asyncio.create_task(run_server(
            create_app(settings, registry=CollectorRegistry(), migrate=True), settings,
            host="127.0.0.1", port=port, stop=stop,
        ))
        url = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(10):
            while True:
                assert not task.done(), "the server did not start"
                try:
                    async with await fresh(url) as s, s.get("/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        yield Running(url, cluster, settings, stop, task)
        stop.set()
        await task
    finally:
        await cluster.stop()


async def test_drain_then_finish_then_flush(running: Running) -> None:
    await running.fault("keycom", latency_ms=400, methods=["PATCH"])
    keep_alive = aiohttp.ClientSession(running.url)
    async with keep_alive, await fresh(running.url) as new:
        before = await running.arrived("keycom", "PATCH")
        in_flight = asyncio.create_task(keep_alive.patch(
            "/v1/systems/keycom/customers/4001", json={"note": "before SIGTERM"}, headers=EDITOR
        ))
        await running.until_arrived("keycom", "PATCH", before + 1)

        running.stop.set()  # what SIGTERM does
        await asyncio.sleep(0.05)
        async with new.get("/readyz") as ready:
            assert ready.status == 503
            assert (await ready.json())["checks"]["accepting"] is False
        # a new connection during the drain is still served, and told to go away after
        async with new.patch(
            "/v1/systems/keycom/customers/100002", json={"note": "during the drain"},
            headers=EDITOR,
        ) as during:
            assert during.status == 200 and (await during.json())["applied"] is True
            assert during.headers.get("Connection", "").lower() == "close"
        first = await in_flight
        assert first.status == 200 and (await first.json())["applied"] is True
        first.release()
        await running.task  # returns once everything is closed

    chain = await read_chain(
        running.settings.audit_url, running.settings.master_key_bytes(),
        running.settings.signing_key_bytes(),
    )
    assert chain.report.ok
    assert len(chain.intents()) == 2 and chain.dangling() == []
    assert {o[0]["outcome"] for o in chain.outcomes().values()} == {"applied"}
    assert chain.checkpoint_seq == chain.head_seq  # the final checkpoint covers everything


async def cut_off_during_forward(running: Running, note: str, **fault: Any) -> Any:
    """Send one keycom change whose PATCH the upstream holds (``fault``), stop the server
    once the PATCH has arrived - drain 0.6 s + grace 0.3 s, less than the hold: the
    handler is cancelled and the caller cut off - and read the chain once it has closed."""
    await running.fault("keycom", methods=["PATCH"], **fault)
    async with await fresh(running.url) as client:
        before = await running.arrived("keycom", "PATCH")
        change = asyncio.create_task(client.patch(
            "/v1/systems/keycom/customers/4001", json={"note": note}, headers=EDITOR,
        ))
        await running.until_arrived("keycom", "PATCH", before + 1)
        running.stop.set()
        with pytest.raises(aiohttp.ClientError):
            await change
        await running.task
    return await read_chain(
        running.settings.audit_url, running.settings.master_key_bytes(),
        running.settings.signing_key_bytes(),
    )


async def test_a_forward_outliving_the_grace_still_gets_its_outcome(running: Running) -> None:
    """The forward runs to its upstream timeout (2 s) after the caller is cut off, and is
    audited before the log closes."""
    chain = await cut_off_during_forward(running, "never answered", hang=1)
    assert chain.report.ok and chain.dangling() == []
    [[outcome]] = chain.outcomes().values()
    assert (outcome["outcome"], outcome["problem_code"]) == ("unknown", "upstream_timeout")
    assert chain.checkpoint_seq == chain.head_seq


async def test_a_forward_landing_after_the_grace_still_gets_its_applied_outcome(
    running: Running,
) -> None:
    """The handler is cancelled while the upstream works; the upstream then applies the
    change (before the upstream timeout): its applied outcome is still written, though
    the task that would have queued it is gone (a done callback of the forward does)."""
    chain = await cut_off_during_forward(running, "applied late", latency_ms=1500)
    assert running.cluster.apps["keycom"][STORE_KEY].get(4001)["note"] == "applied late"
    assert chain.report.ok and chain.dangling() == []
    [[outcome]] = chain.outcomes().values()
    assert (outcome["outcome"], outcome["upstream_status"]) == ("applied", 200)
