"""``EmulatorCluster``: the emulators of a registry's systems, served together on loopback."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from service import registry
from service.emulators.app import create_emulator, reset_emulator
from service.emulators.spec import SystemSpec

#: how long stopping waits for requests still being handled
SHUTDOWN_TIMEOUT_SECONDS = 2.0


class EmulatorCluster:
    """One emulator per system of ``systems`` (default: the shipped registry's, through
    ``service.registry``). ``base_port`` B > 0: ports B+1, B+2, ... in the registry's
    order; B == 0: free ports chosen by the OS. ``urls`` and ``apps`` are filled by
    ``start``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        base_port: int = 0,
        *,
        rate_limit: bool = True,
        retry_after: bool = True,
        systems: Mapping[str, SystemSpec] | None = None,
    ) -> None:
        specs = systems if systems is not None else emulators_of(registry.SYSTEMS)
        if not 0 <= base_port <= 65535 - len(specs):
            raise ValueError(f"base_port must be between 0 and {65535 - len(specs)}")
        self.host = host
        self.base_port = base_port
        self.systems = tuple(specs)
        self.urls: dict[str, str] = {}
        self.ports: dict[str, int] = {}
        self.apps: dict[str, web.Application] = {
            name: create_emulator(spec, rate_limit=rate_limit, retry_after=retry_after)
            for name, spec in specs.items()
        }
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        """Bind and serve them all; on any failure nothing is left running."""
        if self._runners:
            raise RuntimeError("the cluster is already started")
        try:
            for offset, system in enumerate(self.systems, start=1):
                runner = web.AppRunner(
                    self.apps[system], access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
                )
                await runner.setup()
                self._runners.append(runner)
                port = self.base_port + offset if self.base_port else 0
                site = web.TCPSite(runner, self.host, port)
                await site.start()
                bound = _bound_port(runner)
                self.ports[system] = bound
                host = f"[{self.host}]" if ":" in self.host else self.host
                self.urls[system] = f"http://{host}:{bound}"
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        self.urls.clear()
        self.ports.clear()

    def reset(self) -> None:
        """Reset every emulator in place (as ``POST /_emulator/reset`` on each)."""
        for app in self.apps.values():
            reset_emulator(app)

    async def __aenter__(self) -> EmulatorCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def emulators_of(systems: registry.Registry) -> dict[str, SystemSpec]:
    """The emulator of each system of a registry, in its order."""
    return {name: descriptor.emulator for name, descriptor in systems.items()}


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the emulator did not bind a TCP port")
