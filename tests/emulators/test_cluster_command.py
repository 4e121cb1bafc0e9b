"""EmulatorCluster and `gdpr-gateway emulate`."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from service.commands import emulate
from service.emulators import STATS_KEY, STORE_KEY, EmulatorCluster
from service.registry import SYSTEMS

from .conftest import BILLBEE_AUTH, KEYCOM_AUTH, SEDONA_AUTH, TIMELOG_AUTH

ROOT = Path(__file__).resolve().parents[2]
READ = {
    "timelog": ("/demo/api/v1/customer/3001", TIMELOG_AUTH),
    "billbee": ("/api/v1/customers/1002", BILLBEE_AUTH),
    "sedona": ("/api/customer/2001", SEDONA_AUTH),
    "keycom": ("/customers/4002/", KEYCOM_AUTH),
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gdpr-gateway")
    emulate.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["emulate", *argv])


async def _start_on_some_base(**kwargs: bool) -> EmulatorCluster:
    rng = random.Random()
    for _ in range(20):
        cluster = EmulatorCluster(base_port=rng.randrange(20000, 60000, 10), **kwargs)
        try:
            await cluster.start()
        except OSError:
            continue
        return cluster
    pytest.skip("no four consecutive free ports found")


async def test_cluster_with_random_ports_serves_all_four() -> None:
    async with EmulatorCluster() as cluster, aiohttp.ClientSession() as http:
        assert list(cluster.urls) == list(SYSTEMS)
        assert len(set(cluster.ports.values())) == 4
        for system, (path, headers) in READ.items():
            async with http.get(cluster.urls[system] + path, headers=headers) as resp:
                assert resp.status == 200
    assert cluster.urls == {}


async def test_cluster_base_port_gives_consecutive_ports_in_order() -> None:
    cluster = await _start_on_some_base(rate_limit=False)
    try:
        base = cluster.base_port
        assert [cluster.ports[s] for s in SYSTEMS] == [base + 1, base + 2, base + 3, base + 4]
        assert cluster.urls["keycom"] == f"http://127.0.0.1:{base + 4}"
    finally:
        await cluster.stop()


async def test_cluster_rate_limit_flag_reaches_billbee() -> None:
    async with EmulatorCluster(rate_limit=False) as cluster, aiohttp.ClientSession() as http:
        path, headers = READ["billbee"]
        for _ in range(4):
            async with http.get(cluster.urls["billbee"] + path, headers=headers) as resp:
                assert resp.status == 200


async def test_cluster_start_fails_cleanly_when_a_port_is_taken() -> None:
    first = await _start_on_some_base()
    try:
        clash = EmulatorCluster(base_port=first.base_port)
        with pytest.raises(OSError):
            await clash.start()
        assert clash.urls == {}
    finally:
        await first.stop()


def test_bad_base_port() -> None:
    with pytest.raises(ValueError):
        EmulatorCluster(base_port=70000)
    assert emulate.run(_parse(["--base-port", "65534"])) == 2


async def test_serve_prints_urls_and_stops_on_the_event(capsys: pytest.CaptureFixture[str]) -> None:
    stop = asyncio.Event()
    cluster = EmulatorCluster(rate_limit=False)
    task = asyncio.create_task(emulate.serve(cluster, stop))
    for _ in range(500):
        if cluster.urls:
            break
        await asyncio.sleep(0.01)
    async with (
        aiohttp.ClientSession() as http,
        http.get(cluster.urls["keycom"] + "/_emulator/stats") as resp,
    ):
        assert resp.status == 200
    stop.set()
    assert await task == 0
    out = capsys.readouterr().out
    for system in SYSTEMS:
        assert system in out
    assert cluster.urls == {}


async def test_serve_stops_on_sigint() -> None:
    cluster = EmulatorCluster(rate_limit=False)
    task = asyncio.create_task(emulate.serve(cluster))
    for _ in range(500):
        if cluster.urls:
            break
        await asyncio.sleep(0.01)
    assert cluster.urls
    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(task, 10) == 0
    assert cluster.urls == {}


async def test_serve_reports_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    first = await _start_on_some_base()
    try:
        code = await emulate.serve(EmulatorCluster(base_port=first.base_port), asyncio.Event())
    finally:
        await first.stop()
    assert code == 2
    assert "cannot listen" in capsys.readouterr().err


def test_gdpr_gateway_emulate_runs_and_stops_on_sigterm() -> None:
    argv = [sys.executable, "-m", "service.cli", "emulate", "--base-port", "0",
            "--no-rate-limit"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter and our own CLI
        argv, cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "ready" in line:
                break
        urls = {p[0]: p[1] for p in (ln.split() for ln in lines) if p and p[0] in SYSTEMS}
        assert list(urls) == list(SYSTEMS)
        assert all(u.startswith("http://127.0.0.1:") for u in urls.values())
        stats_url = urls["keycom"] + "/_emulator/stats"
        assert stats_url.startswith("http://")
        with urllib.request.urlopen(stats_url, timeout=5) as answer:  # noqa: S310 - http only
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "stopping" in out
    assert "Traceback" not in err


async def test_cluster_reset_restores_every_emulator() -> None:
    async with EmulatorCluster(rate_limit=False) as cluster, aiohttp.ClientSession() as http:
        store = cluster.apps["keycom"][STORE_KEY]
        before = store.get(4001)
        url = cluster.urls["keycom"] + "/customers/4001/"
        async with http.patch(url, json={"note": "x"}, headers=KEYCOM_AUTH) as resp:
            assert resp.status == 200
        assert store.get(4001) != before
        cluster.reset()
        assert store.get(4001) == before
        assert all(app[STATS_KEY].total == 0 for app in cluster.apps.values())


async def test_cluster_on_ipv6_loopback() -> None:
    cluster = EmulatorCluster(host="::1")
    try:
        await cluster.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert cluster.urls["sedona"].startswith("http://[::1]:")
        async with aiohttp.ClientSession() as http:
            async with http.get(cluster.urls["sedona"] + "/_emulator/stats") as resp:
                assert resp.status == 200  # ::1 is a loopback peer
            path, headers = READ["sedona"]
            async with http.get(cluster.urls["sedona"] + path, headers=headers) as resp:
                assert resp.status == 200
    finally:
        await cluster.stop()
