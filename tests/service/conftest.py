"""The gateway for real: the four emulators on loopback, SQLite or PostgreSQL audit."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from service.app import create_app
from service.demo_settings import demo_settings
from service.emulators import STORE_KEY, EmulatorCluster, emulators_of
from service.keys import AUDIT_KEY
from service.registry import SYSTEMS, Registry
from service.settings import Settings, TokenEntry

EDITOR = {"Authorization": "Bearer demo-editor", "X-Purpose": "customer_service"}
AUDITOR = {"Authorization": "Bearer demo-auditor", "X-Purpose": "customer_service"}
PRIVACY = {"Authorization": "Bearer demo-privacy", "X-Purpose": "customer_service"}
ADMIN = {"Authorization": "Bearer demo-admin", "X-Purpose": "customer_service"}


@dataclasses.dataclass
class Stack:
    client: TestClient[Any, Any]
    cluster: EmulatorCluster
    settings: Settings
    registry: CollectorRegistry

    def store(self, system: str) -> Any:
        return self.cluster.apps[system][STORE_KEY]

    async def stats(self, system: str) -> dict[str, int]:
        async with ClientSession() as session, session.get(
            f"{self.cluster.urls[system]}/_emulator/stats"
        ) as resp:
            body: dict[str, dict[str, int]] = await resp.json()
        return body["requests"]

    async def fault(self, system: str, **plan: Any) -> None:
        async with ClientSession() as session, session.post(
            f"{self.cluster.urls[system]}/_emulator/faults", json=plan
        ) as resp:
            assert resp.status in (200, 201, 204)

    async def clear_faults(self, system: str) -> None:
        """No more faults; requests held by a ``hang`` are let go (dropped)."""
        async with ClientSession() as session, session.delete(
            f"{self.cluster.urls[system]}/_emulator/faults"
        ) as resp:
            assert resp.status == 200

    @property
    def audit(self) -> Any:
        return self.client.app[AUDIT_KEY]  # type: ignore[index]


@contextlib.contextmanager
def once_intent_durable(audit: Any, then: Callable[[], object]) -> Iterator[None]:
    """Run ``then()`` in the change's own task as soon as its intent is durable, before
    anything else of that change runs (the window between the intent and the forward:
    someone edits the record upstream, a breaker opens, the store goes away)."""
    queue = audit.begin_queued

    def begin_queued(intent: Any) -> Coroutine[Any, Any, str]:
        begun = queue(intent)

        async def durable() -> str:
            audit_id: str = await begun
            then()
            return audit_id

        return durable()

    audit.begin_queued = begin_queued
    try:
        yield
    finally:
        del audit.begin_queued  # the class's own again


#: principals that may touch billbee only, one per role (for the scope cases)
SCOPED_EDITOR = {"Authorization": "Bearer scoped-editor-token", "X-Purpose": "customer_service"}
SCOPED_AUDITOR = {"Authorization": "Bearer scoped-auditor-token"}
SCOPED_PRIVACY = {"Authorization": "Bearer scoped-privacy-token"}


def scoped_token_settings(settings: Settings) -> Settings:
    """Add tokens whose principals may touch billbee only (for the forbidden cases)."""
    import hashlib

    extra = tuple(
        TokenEntry(
            name=f"scoped-{role}",
            roles=frozenset({role}),
            systems=frozenset({"billbee"}),
            sha256=hashlib.sha256(f"scoped-{name}-token".encode()).hexdigest(),
        )
        for name, role in (
            ("editor", "editor"), ("auditor", "auditor"), ("privacy", "privacy_officer")
        )
    )
    return dataclasses.replace(settings, tokens=(*settings.tokens, *extra))


async def make_stack(
    aiohttp_client: Callable[..., Any],
    tmp_path: Path,
    *,
    audit_url: str | None = None,
    rate_limit: bool = False,
    tweak: Callable[[Settings], Settings] | None = None,
    systems: Registry = SYSTEMS,
) -> AsyncIterator[Stack]:
    cluster = EmulatorCluster(base_port=0, rate_limit=rate_limit, systems=emulators_of(systems))
    await cluster.start()
    try:
        settings = demo_settings(
            port=0,
            state_dir=tmp_path,
            upstream_urls=cluster.urls,
            audit_url=audit_url or f"sqlite+aiosqlite:///{tmp_path}/audit.db",
            master_key=os.urandom(32),
            signing_key=os.urandom(32),
            systems=systems,
        )
        upstreams = {
            name: dataclasses.replace(
                up,
                rate_limit_per_second=up.rate_limit_per_second if rate_limit else None,
                timeout_seconds=2.0,
                backoff_max_seconds=0.5,
            )
            for name, up in settings.upstreams.items()
        }
        settings = scoped_token_settings(dataclasses.replace(settings, upstreams=upstreams))
        if tweak is not None:
            settings = tweak(settings)
        registry = CollectorRegistry()
        client = await aiohttp_client(create_app(settings, registry=registry, migrate=True))
        yield Stack(client=client, cluster=cluster, settings=settings, registry=registry)
    finally:
        await cluster.stop()


@pytest.fixture
async def stack(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in make_stack(aiohttp_client, tmp_path):
        yield s


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store_stack(
    request: pytest.FixtureRequest, aiohttp_client: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Stack]:
    """The same stack on each audit store; PostgreSQL gets a schema of its own."""
    if request.param == "sqlite":
        async for s in make_stack(aiohttp_client, tmp_path):
            yield s
        return
    import asyncpg

    name = f"e2e_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        async for s in make_stack(aiohttp_client, tmp_path, audit_url=url):
            yield s
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
