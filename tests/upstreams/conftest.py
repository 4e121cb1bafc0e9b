"""The four emulators on loopback, and connector settings that reach them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from service.emulators import DEMO_CREDENTIALS, FAULTS_KEY, EmulatorCluster, FaultPlan
from service.secret import Secret
from service.upstreams.settings import UpstreamSettings

#: small, so that the whole suite stays quick; the emulators answer in milliseconds
TEST_LIMITS: dict[str, Any] = {
    "timeout_seconds": 0.5,
    "connect_timeout_seconds": 0.5,
    "max_retries": 2,
    "backoff_max_seconds": 1.5,
    "breaker_failure_threshold": 5,
    "breaker_reset_seconds": 0.3,
}


@pytest.fixture
async def cluster() -> AsyncIterator[EmulatorCluster]:
    emulators = EmulatorCluster(base_port=0, rate_limit=True, retry_after=True)
    await emulators.start()
    try:
        yield emulators
    finally:
        for app in emulators.apps.values():
            app[FAULTS_KEY].clear()  # let hung requests go before stopping
        await emulators.stop()


def demo_settings(system: str, base_url: str, **overrides: Any) -> UpstreamSettings:
    creds = dict(DEMO_CREDENTIALS[system])
    options: dict[str, str] = {}
    if system == "timelog":
        options = {"account": creds.pop("account"), "api_version": "v1"}
    values: dict[str, Any] = {
        "system": system,
        "base_url": base_url,
        "credentials": {k: Secret(v) for k, v in creds.items()},
        "options": options,
        **TEST_LIMITS,
    }
    values.update(overrides)
    return UpstreamSettings(**values)


@pytest.fixture
def set_faults(cluster: EmulatorCluster) -> Callable[..., None]:
    """``set_faults(system, status=503, count=1, methods=["GET"], ...)``."""

    def apply(system: str, **plan: Any) -> None:
        if "methods" in plan and plan["methods"] is not None:
            plan["methods"] = frozenset(plan["methods"])
        cluster.apps[system][FAULTS_KEY].set(FaultPlan(**plan))

    return apply
