"""What the upstream tests share: demo settings with small limits, the cases per system,
and a harness around a connector and its emulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.emulators import STATS_KEY, STORE_KEY, EmulatorCluster
from service.registry import SYSTEMS, build_connector
from service.secret import Secret
from service.upstreams.settings import UpstreamSettings
from service.upstreams.transport import HttpConnector

#: small backoff and breaker periods keep the suite quick; the timeouts are generous so
#: that a loaded machine does not fail a test (tests of timeouts set their own, small)
TEST_LIMITS: dict[str, Any] = {
    "timeout_seconds": 2.0,
    "connect_timeout_seconds": 2.0,
    "max_retries": 2,
    "backoff_max_seconds": 1.5,
    "breaker_failure_threshold": 5,
    "breaker_reset_seconds": 0.3,
}


def demo_settings(system: str, base_url: str, **overrides: Any) -> UpstreamSettings:
    emulator = SYSTEMS[system].emulator
    creds, options = dict(emulator.credentials), dict(emulator.options)
    values: dict[str, Any] = {
        "system": system,
        "base_url": base_url,
        "credentials": {k: Secret(v) for k, v in creds.items()},
        "options": options,
        **TEST_LIMITS,
    }
    values.update(overrides)
    return UpstreamSettings(**values)


@dataclass(frozen=True)
class Case:
    """What each system's contract test changes, and how to break it."""

    customer_id: int
    field: str  # a writable field, in write names
    new_value: Any
    store_field: str  # the same field as the emulator stores it
    bad_field: str  # a field the upstream's own validation refuses
    bad_value: Any


CASES: dict[str, Case] = {
    "timelog": Case(3001, "Name", "Havnefront Arkitekter ApS", "Name", "CustomerStatusID", "x1"),
    "billbee": Case(1002, "Name", "Jonas Keller-Berg", "Name", "Type", 7),
    "sedona": Case(2001, "CustomerName", "Carter, Emma", "CustomerName", "CustomerName", "x" * 61),
    "keycom": Case(4001, "name", "Virtanen Aino Maria", "name", "email", "not-an-email-value"),
}
UNKNOWN_ID = "999999"
PUT_SYSTEMS = [s for s in SYSTEMS if s != "keycom"]

Observed = list[tuple[str, str, int | None]]


@dataclass
class Harness:
    cluster: EmulatorCluster
    system: str
    connector: HttpConnector
    observed: Observed

    def stats(self, method: str) -> int:
        return self.cluster.apps[self.system][STATS_KEY].requests(method)

    @property
    def total(self) -> int:
        return self.cluster.apps[self.system][STATS_KEY].total

    def stored(self, customer_id: int) -> dict[str, Any]:
        record = self.cluster.apps[self.system][STORE_KEY].get(customer_id)
        assert record is not None
        return record


def connector_for(
    cluster: EmulatorCluster, system: str, observed: Observed, **overrides: Any
) -> Any:
    """A connector to the emulated ``system``, noting each attempt in ``observed``."""

    def observe(sys_: str, method: str, status: int | None, _seconds: float) -> None:
        observed.append((sys_, method, status))

    return build_connector(
        demo_settings(system, cluster.urls[system], **overrides), observe=observe
    )


async def write(h: Harness, customer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """What the gateway does: a patch for patch systems, the merged whole object else."""
    if h.connector.mode == "patch":
        return await h.connector.apply(customer_id, changes)
    current = await h.connector.fetch(customer_id)
    return await h.connector.apply(customer_id, {**current, **changes})
