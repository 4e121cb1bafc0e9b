"""A fifth system needs one connector module, one policy file, one emulator and one
registry line (tests/service/toy/), and nothing else: the configuration's schema, the
metrics, the principals' scopes, the policy set and the emulator cluster follow the
registry, and a change goes the whole way - validated, audited, forwarded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from service.config import ConfigError, load_settings
from service.emulators import STATS_KEY, STORE_KEY
from service.registry import SYSTEMS
from tests.service.conftest import AUDITOR, EDITOR, Stack, make_stack
from tests.service.toy import REGISTRY

SHOPPER = "/v1/systems/toyshop/customers/1"


@pytest.fixture
async def toy(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    """The real app and emulators of the shipped systems and the toy shop."""
    async for stack in make_stack(aiohttp_client, tmp_path, systems=REGISTRY):
        yield stack


def test_the_registry_line_is_all_the_configuration_needs() -> None:
    assert "toyshop" not in SYSTEMS  # the shipped registry is untouched
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {}, systems=REGISTRY)
    assert "configuration: upstreams.toyshop.base_url: required (or " \
        "GDPR_GATEWAY_UPSTREAMS_TOYSHOP_BASE_URL)" in caught.value.errors
    assert "configuration: upstreams.toyshop.credentials.api_key: required (or " \
        "GDPR_GATEWAY_UPSTREAMS_TOYSHOP_CREDENTIALS_API_KEY)" in caught.value.errors
    with pytest.raises(ConfigError) as caught:  # without the line, the variable is unknown
        load_settings(None, {"GDPR_GATEWAY_UPSTREAMS_TOYSHOP_BASE_URL": "http://t"})
    assert "GDPR_GATEWAY_UPSTREAMS_TOYSHOP_BASE_URL: unknown variable" in caught.value.errors


async def test_a_patch_is_validated_audited_and_forwarded_to_the_toy_emulator(
    toy: Stack,
) -> None:
    client, metrics = toy.client, toy.registry
    emulator = toy.cluster.apps["toyshop"]

    async with client.get("/v1/systems", headers=AUDITOR) as response:
        listed = {s["system"]: s["mode"] for s in (await response.json())["systems"]}
    assert listed["toyshop"] == "patch" and len(listed) == 5

    # validated: a malformed email is refused before anything is read or forwarded
    async with client.patch(SHOPPER, headers=EDITOR, json={"email": "not-an-email"}) as r:
        assert r.status == 422
        body = await r.json()
    assert body["code"] == "validation_failed"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("email", "invalid_format")]
    assert emulator[STATS_KEY].snapshot()["requests"].get("PATCH", 0) == 0

    # allowed: audited, then forwarded as a patch, and answered masked for an editor
    async with client.patch(SHOPPER, headers=EDITOR, json={"email": "ada@toys.example"}) as r:
        assert r.status == 200, await r.text()
        result = await r.json()
    assert (result["applied"], result["changed"]) == (True, ["email"])
    assert result["customer"]["email"] != "ada@toys.example"  # personal: partly masked
    assert emulator[STORE_KEY].get(1)["email"] == "ada@toys.example"
    assert emulator[STATS_KEY].snapshot()["requests"]["PATCH"] == 1

    async with client.get("/v1/audit?system=toyshop", headers=AUDITOR) as response:
        entries = (await response.json())["entries"]
    assert [(e["action"], e["phase"], e["outcome"]) for e in entries] == [
        ("update", "outcome", "applied"),
        ("update", "intent", None),
        ("update", "outcome", "rejected"),
    ]
    assert entries[1]["audit_id"] == entries[0]["intent_id"] == result["audit_id"]
    assert {e["system"] for e in entries} == {"toyshop"}

    # the metrics know the system from the start
    decided = metrics.get_sample_value(
        "gdpr_gateway_decisions_total", {"system": "toyshop", "outcome": "allowed", "code": "none"}
    )
    assert decided == 1
    refused = metrics.get_sample_value(
        "gdpr_gateway_validation_errors_total", {"system": "toyshop", "code": "invalid_format"}
    )
    assert refused == 1
