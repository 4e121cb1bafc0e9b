"""The upstream systems: one descriptor each, in one registry.

A :class:`SystemDescriptor` names everything that makes a system: its connector class,
the models of its credentials and options (declared next to the connector, which reads
them typed), its policy file and its emulator. Everything that needs *the* systems
derives them from a :class:`Registry`: the configuration schema (one
``upstreams.<system>`` section each, docs/configuration.md), the demo's settings, the
connectors the app opens, the policy set loaded when no ``policies_dir`` is given, the
metric label sets, the principals' known systems and the emulator cluster.

:data:`SYSTEMS` is the shipped registry. Adding a system is one connector module, one
policy file, one emulator and one line here (docs/architecture.md "Adding a system");
``tests/service/toy/`` does exactly that for a fifth system that exists in tests only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common.vocabulary import System
from policies.loader import CATALOG
from service.config_types import Credentials, Options
from service.emulators import billbee as billbee_emulator
from service.emulators import keycom as keycom_emulator
from service.emulators import sedona as sedona_emulator
from service.emulators import timelog as timelog_emulator
from service.emulators.spec import SystemSpec
from service.upstreams import billbee, keycom, sedona, timelog
from service.upstreams.base import Connector, Observe
from service.upstreams.settings import UpstreamSettings
from service.upstreams.transport import HttpConnector


@dataclass(frozen=True, slots=True)
class SystemDescriptor:
    """One upstream system, as the gateway knows it."""

    name: str
    connector: type[HttpConnector]
    credentials: type[Credentials]
    options: type[Options] | None
    #: the policy in force when ``policies_dir`` is not set
    policy: Path
    #: the stand-in the demo and the tests run
    emulator: SystemSpec

    def __post_init__(self) -> None:
        names = {self.name, self.connector.system, self.emulator.name}
        if len(names) != 1:
            raise ValueError(f"system {self.name}: descriptor, connector and emulator differ")
        if self.connector.required_credentials != self.credentials.names():
            raise ValueError(f"system {self.name}: the connector reads other credentials")


class Registry(Mapping[str, SystemDescriptor]):
    """The systems by name (plain strings: they go into YAML, JSON and labels), in a
    fixed order (the emulators' ports follow it)."""

    def __init__(self, *descriptors: SystemDescriptor) -> None:
        self._by_name = {str(d.name): d for d in descriptors}
        if len(self._by_name) != len(descriptors):
            raise ValueError("a system is registered twice")

    def __getitem__(self, name: str) -> SystemDescriptor:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    # one registry is one set of systems: compared and hashed by identity (the
    # configuration schema built for it is cached by it)
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._by_name)})"

    def adding(self, descriptor: SystemDescriptor) -> Registry:
        """This registry and one more system."""
        return Registry(*self._by_name.values(), descriptor)

    def policy_files(self) -> list[Path]:
        """Each system's policy file: the policy set without ``policies_dir``."""
        return [d.policy for d in self._by_name.values()]

    def connect(self, settings: UpstreamSettings, *, observe: Observe | None = None) -> Connector:
        """The connector for ``settings.system``. Its ``ClientSession`` is opened on first
        use (inside the running loop) and closed by ``close()``.

        ``ValueError`` for an unknown system or unusable settings (names, never values).
        """
        descriptor = self._by_name.get(settings.system)
        if descriptor is None:
            known = ", ".join(self._by_name)
            raise ValueError(f"unknown upstream system {settings.system!r}; known: {known}")
        return descriptor.connector(settings, observe=observe)


#: The systems the gateway ships with.
SYSTEMS: Final = Registry(
    SystemDescriptor(System.TIMELOG, timelog.TimelogConnector, timelog.TimelogCredentials,
                     timelog.TimelogOptions, CATALOG / "timelog.yaml", timelog_emulator.SPEC),
    SystemDescriptor(System.BILLBEE, billbee.BillbeeConnector, billbee.BillbeeCredentials,
                     None, CATALOG / "billbee.yaml", billbee_emulator.SPEC),
    SystemDescriptor(System.SEDONA, sedona.SedonaConnector, sedona.SedonaCredentials,
                     None, CATALOG / "sedona.yaml", sedona_emulator.SPEC),
    SystemDescriptor(System.KEYCOM, keycom.KeycomConnector, keycom.KeycomCredentials,
                     None, CATALOG / "keycom.yaml", keycom_emulator.SPEC),
)  # fmt: skip


def build_connector(
    settings: UpstreamSettings,
    *,
    observe: Observe | None = None,
    systems: Registry = SYSTEMS,
) -> Connector:
    """The connector for ``settings.system`` among ``systems`` (:meth:`Registry.connect`)."""
    return systems.connect(settings, observe=observe)
