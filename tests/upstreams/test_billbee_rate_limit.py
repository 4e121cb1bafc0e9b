"""Billbee's 2 requests/second: pacing under the limit, and 429 handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from service.emulators import LIMITER_KEY, STATS_KEY, EmulatorCluster
from service.errors import UpstreamRateLimited
from service.registry import build_connector
from service.upstreams.transport import HttpConnector
from tests.upstreams.harness import demo_settings

Observed = list[int | None]


@pytest.fixture
async def billbee(
    cluster: EmulatorCluster,
) -> AsyncIterator[Callable[..., tuple[HttpConnector, Observed]]]:
    made: list[HttpConnector] = []

    def factory(**overrides: Any) -> tuple[HttpConnector, Observed]:
        observed: Observed = []
        connector = build_connector(
            demo_settings("billbee", cluster.urls["billbee"], **overrides),
            observe=lambda _s, _m, status, _t: observed.append(status),
        )
        assert isinstance(connector, HttpConnector)
        made.append(connector)
        return connector, observed

    yield factory
    for connector in made:
        await connector.close()


def gets(cluster: EmulatorCluster) -> int:
    return cluster.apps["billbee"][STATS_KEY].requests("GET")


async def test_pacing_keeps_a_burst_under_the_limit(
    cluster: EmulatorCluster, billbee: Callable[..., tuple[HttpConnector, Observed]]
) -> None:
    connector, observed = billbee()  # no rate configured: the documented 2/s
    record = await connector.fetch("1002")

    async def put() -> dict[str, Any]:
        return await connector.apply("1002", record)

    results = await asyncio.gather(
        *(connector.fetch("1002") for _ in range(4)), *(put() for _ in range(3))
    )
    assert len(results) == 7
    assert 429 not in observed
    assert observed == [200] * 8
    assert cluster.apps["billbee"][STATS_KEY].requests("PUT") == 3


async def test_real_429_with_retry_after_is_waited_out(
    cluster: EmulatorCluster, billbee: Callable[..., tuple[HttpConnector, Observed]]
) -> None:
    # A rate configured far above the real limit: the upstream's 429s must carry us.
    connector, observed = billbee(rate_limit_per_second=100.0, rate_limit_burst=10)
    results = await asyncio.gather(*(connector.fetch("1002") for _ in range(4)))
    assert all(r["Id"] == 1002 for r in results)
    assert observed.count(429) >= 2
    assert observed.count(200) == 4
    assert gets(cluster) == len(observed)


async def test_injected_429_without_retry_after_backs_off(
    cluster: EmulatorCluster,
    billbee: Callable[..., tuple[HttpConnector, Observed]],
    set_faults: Callable[..., None],
) -> None:
    connector, observed = billbee()
    set_faults("billbee", status=429, count=1, methods=["GET"])
    assert (await connector.fetch("1002"))["Id"] == 1002
    assert observed == [429, 200]


async def test_real_429_without_retry_after_backs_off(
    cluster: EmulatorCluster, billbee: Callable[..., tuple[HttpConnector, Observed]]
) -> None:
    cluster.apps["billbee"][LIMITER_KEY].retry_after = False
    connector, observed = billbee(rate_limit_per_second=2.0, rate_limit_burst=3)
    # a burst of 3 exceeds the window's 2: the third is refused without Retry-After
    results = await asyncio.gather(*(connector.fetch("1002") for _ in range(3)))
    assert len(results) == 3
    assert 429 in observed
    assert observed.count(200) == 3


async def test_retry_after_beyond_the_bound_gives_up_at_once(
    cluster: EmulatorCluster,
    billbee: Callable[..., tuple[HttpConnector, Observed]],
    set_faults: Callable[..., None],
) -> None:
    connector, observed = billbee(backoff_max_seconds=1.0)
    set_faults("billbee", status=429, count=5, retry_after=30, methods=["GET"])
    with pytest.raises(UpstreamRateLimited) as info:
        await connector.fetch("1002")
    assert info.value.retry_after == 30.0
    assert info.value.status == 429
    assert observed == [429]


async def test_persistent_429_gives_up_after_bounded_tries(
    cluster: EmulatorCluster,
    billbee: Callable[..., tuple[HttpConnector, Observed]],
    set_faults: Callable[..., None],
) -> None:
    connector, observed = billbee(max_retries=1, backoff_max_seconds=1.0)
    set_faults("billbee", status=429, count=10, methods=["GET"])
    with pytest.raises(UpstreamRateLimited) as info:
        await connector.fetch("1002")
    assert observed == [429, 429]
    assert info.value.retry_after is not None and info.value.retry_after >= 1.0
    assert connector.breaker.state == "closed"


async def test_each_endpoint_draws_from_one_bucket_of_its_own(
    billbee: Callable[..., tuple[HttpConnector, Observed]],
) -> None:
    """The bucket of a (method, route) pair is found once and kept (not a fingerprint of
    the credentials per call): a GET and a PUT of one customer pace apart, every call
    of one endpoint on the same bucket, and a system without a rate is not paced."""
    connector, _ = billbee()
    get = connector._pacer("GET", "customers/{id}")
    put = connector._pacer("PUT", "customers/{id}")
    assert get is not None and put is not None and get is not put
    assert connector._pacer("GET", "customers/{id}") is get
    assert len(connector._buckets) == 2
    keycom = build_connector(demo_settings("keycom", "http://127.0.0.1:9/"))
    assert isinstance(keycom, HttpConnector)
    assert keycom._pacer("GET", "customers/{id}/") is None
