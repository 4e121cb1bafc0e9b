"""Fixtures: the four emulators on loopback, fault injection, connectors to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from service.emulators import FAULTS_KEY, EmulatorCluster, FaultPlan
from service.upstreams.transport import HttpConnector
from tests.upstreams.harness import Harness, Observed, connector_for


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


@pytest.fixture
def set_faults(cluster: EmulatorCluster) -> Callable[..., None]:
    """``set_faults(system, status=503, count=1, methods=["GET"], ...)``."""

    def apply(system: str, **plan: Any) -> None:
        if "methods" in plan and plan["methods"] is not None:
            plan["methods"] = frozenset(plan["methods"])
        cluster.apps[system][FAULTS_KEY].set(FaultPlan(**plan))

    return apply


@pytest.fixture
async def make(cluster: EmulatorCluster) -> AsyncIterator[Callable[..., Harness]]:
    """``make(system, **setting_overrides) -> Harness``; every connector closed after."""
    made: list[HttpConnector] = []

    def factory(system: str, **overrides: Any) -> Harness:
        observed: Observed = []
        connector = connector_for(cluster, system, observed, **overrides)
        made.append(connector)
        return Harness(cluster, system, connector, observed)

    yield factory
    for connector in made:
        await connector.close()
