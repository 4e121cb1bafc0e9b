"""The client example of docs/clients.md (``docs/examples/gateway_client.py``) against the
gateway and its emulators on loopback: a dropped connection is retried with the same key
and the change applied once; a 504 is polled until the change is resolved."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from service.settings import Settings
from tests.service.conftest import Stack, make_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "gateway_client.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gateway_client", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gateway_client"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _tweak(settings: Settings) -> Settings:
    upstreams = {
        name: dataclasses.replace(up, timeout_seconds=0.6, backoff_max_seconds=0.05)
        for name, up in settings.upstreams.items()
    }
    return dataclasses.replace(
        settings, upstreams=upstreams, audit_reconcile_seconds=0.1,
        audit_reconcile_min_age_seconds=0.3, idempotency_wait_seconds=1.0,
    )  # fmt: skip


@pytest.fixture
async def gateway(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in make_stack(aiohttp_client, tmp_path, tweak=_tweak):
        yield s


async def test_the_example_retries_a_dropped_connection_and_applies_once(gateway: Stack) -> None:
    client_module = _example()
    await gateway.fault("keycom", methods=["PATCH"], latency_ms=400)
    base = str(gateway.client.make_url("/"))
    async with client_module.GatewayClient(
        base, "demo-editor", timeout_seconds=0.15, backoff_seconds=0.05, attempts=10
    ) as client:
        result = await client.patch("keycom", "4001", {"note": "from the example"})
    assert (result.status, result.state) == (200, "applied")
    assert result.body["applied"] is True
    assert gateway.store("keycom").get(4001)["note"] == "from the example"
    assert (await gateway.stats("keycom"))["PATCH"] == 1


async def test_the_example_polls_a_504_until_it_is_resolved(gateway: Stack) -> None:
    client_module = _example()
    await gateway.fault("keycom", methods=["PATCH"], reset=1)
    base = str(gateway.client.make_url("/"))
    async with client_module.GatewayClient(
        base, "demo-editor", poll_seconds=0.1, poll_for_seconds=10.0
    ) as client:
        result = await client.patch("keycom", "4001", {"note": "lost on the way"})
    assert result.state == "not_applied", result.body
    assert result.body["state"] == "unknown" and result.body["settled"] is True
    assert (await gateway.stats("keycom"))["PATCH"] == 1
