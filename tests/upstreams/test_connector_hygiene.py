"""The factory's checks, and what leaves a connector besides its answer: logs, the
observe hook, pacing, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from service.emulators import EmulatorCluster
from service.errors import (
    CircuitOpen,
    UpstreamError,
    UpstreamTimeout,
)
from service.registry import SYSTEMS, build_connector
from service.upstreams.keycom import KeycomConnector
from service.upstreams.settings import UpstreamSettings
from tests.upstreams.harness import (
    CASES,
    Harness,
    demo_settings,
    write,
)

# -- the factory -----------------------------------------------------------------------


def test_build_connector_refuses_unknown_systems_and_missing_credentials() -> None:
    with pytest.raises(ValueError, match="unknown upstream system"):
        build_connector(UpstreamSettings(system="nope", base_url="http://127.0.0.1:1"))
    with pytest.raises(ValueError, match="api_key"):
        build_connector(demo_settings("billbee", "http://127.0.0.1:1", credentials={}))


@pytest.mark.parametrize("system", SYSTEMS)
def test_modes_and_coverage(system: str) -> None:
    connector = build_connector(demo_settings(system, "http://127.0.0.1:1"))
    assert connector.system == system
    assert connector.mode == ("patch" if system == "keycom" else "put")
    assert connector.read_coverage
    assert connector.breaker.state == "closed"


# -- what leaves a connector besides its answer ------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_logs_carry_no_values_ids_or_secrets(
    make: Callable[..., Harness],
    set_faults: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    system: str,
) -> None:
    caplog.set_level("DEBUG")
    h = make(system)
    case = CASES[system]
    set_faults(system, status=503, count=1, methods=["GET"])
    assert await h.connector.fetch(str(case.customer_id))
    after = await write(h, str(case.customer_id), {case.field: case.new_value})
    assert after[case.field] == case.new_value
    set_faults(system, reset=5)
    with pytest.raises(UpstreamError):
        await h.connector.fetch(str(case.customer_id))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "retry" in text  # the retries were logged ...
    assert str(case.customer_id) not in text  # ... without the customer's id
    assert str(case.new_value) not in text
    for secret in h.connector.settings.credentials.values():
        assert secret.reveal() not in text


async def test_a_failing_observe_hook_does_not_break_a_call(cluster: EmulatorCluster) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("metrics down")

    connector = build_connector(demo_settings("keycom", cluster.urls["keycom"]), observe=broken)
    try:
        assert (await connector.fetch("4001"))["id"] == 4001
    finally:
        await connector.close()


async def test_put_timeout_is_not_resent(
    make: Callable[..., Harness], set_faults: Callable[..., None]
) -> None:
    """A timed-out whole object may still land: re-sending it could later overwrite a
    change made in between (issue 8, item 14). The outcome is unknown instead."""
    h = make("sedona", timeout_seconds=0.3)
    record = await h.connector.fetch("2001")
    set_faults("sedona", hang=1, methods=["PUT"])
    with pytest.raises(UpstreamTimeout, match="outcome unknown"):
        await h.connector.apply("2001", {**record, "CustomerName": "Carter, Emma"})
    assert h.stats("PUT") == 1


async def test_cancelled_probe_frees_the_half_open_slot(
    make: Callable[..., Harness], set_faults: Callable[..., None]
) -> None:
    h = make("keycom", breaker_failure_threshold=1, max_retries=0, breaker_reset_seconds=0.1,
             timeout_seconds=5.0)
    set_faults("keycom", status=503, count=1)
    with pytest.raises(UpstreamError):
        await h.connector.fetch("4001")
    await asyncio.sleep(0.15)
    set_faults("keycom", hang=1)
    probe = asyncio.create_task(h.connector.fetch("4001"))
    for _ in range(500):  # until the probe has reached the (hanging) upstream
        if h.stats("GET") >= 2:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpen):  # the probe is in flight: nobody else goes
        await h.connector.fetch("4001")
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert h.connector.breaker.state == "half_open"
    assert (await h.connector.fetch("4001"))["id"] == 4001
    assert h.connector.breaker.state == "closed"


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:1/", "127.0.0.1:8000", "http://user:pw-secret@127.0.0.1:1/",
            "http://127.0.0.1:1/?token=pw-secret"]
)
def test_unusable_base_urls_are_refused_without_echo(url: str) -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        build_connector(demo_settings("keycom", url))
    assert "pw-secret" not in str(info.value)


async def test_a_configured_rate_paces_any_system(cluster: EmulatorCluster) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    connector = KeycomConnector(
        demo_settings("keycom", cluster.urls["keycom"], rate_limit_per_second=5.0),
        sleep=fake_sleep,
    )
    try:
        for _ in range(3):
            await connector.fetch("4001")
    finally:
        await connector.close()
    assert len(slept) == 2  # the 2nd and 3rd call waited for a token
    assert all(0 < s <= 2 / (5.0 * 0.9) for s in slept)


@pytest.mark.parametrize(
    "options",
    [{}, {"account": "de/mo", "api_version": "v1"}, {"account": "demo", "api_version": "x"}],
)
def test_timelog_needs_a_usable_account_and_version(options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="account"):
        build_connector(demo_settings("timelog", "http://127.0.0.1:1", options=options))
