"""Policies reload under a running gateway (in-process app), laid out as a ConfigMap mount."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from service.keys import POLICIES_KEY
from service.reload import EngineKeys, PolicyReloader, fingerprint, source_dir
from service.settings import Settings
from tests.service.configmap import catalog, note_read_only, write_configmap
from tests.service.conftest import AUDITOR, EDITOR, Stack, make_stack

NOTE_URL = "/v1/systems/keycom/customers/4001"


def watching(directory: Path) -> Callable[[Settings], Settings]:
    def tweak(settings: Settings) -> Settings:
        return dataclasses.replace(
            settings, policies_dir=directory, policies_reload_seconds=0.05
        )

    return tweak


@pytest.fixture
async def mounted(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    write_configmap(tmp_path / "policies", catalog())
    async for s in make_stack(aiohttp_client, tmp_path, tweak=watching(tmp_path / "policies")):
        yield s


async def versions(stack: Stack) -> dict[str, str]:
    resp = await stack.client.get("/v1/systems", headers=EDITOR)
    assert resp.status == 200
    return {s["system"]: s["policy_version"] for s in (await resp.json())["systems"]}


def reloads(stack: Stack, result: str) -> float:
    value = stack.registry.get_sample_value(
        "gdpr_gateway_policy_reload_total", {"result": result}
    )
    assert value is not None
    return value


async def until(check: Callable[[], Any], what: str, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(what)


async def test_a_swapped_configmap_is_put_in_force_without_a_restart(mounted: Stack) -> None:
    before = await versions(mounted)
    write_configmap(mounted.settings.policies_dir or Path(), catalog(
        **{"keycom.yaml": note_read_only(catalog()["keycom.yaml"])}
    ))

    async def swapped() -> bool:
        return (await versions(mounted))["keycom"] != before["keycom"]

    await until(swapped, "the new keycom policy is in force")
    after = await versions(mounted)
    assert {s: v for s, v in after.items() if s != "keycom"} == {
        s: v for s, v in before.items() if s != "keycom"
    }
    assert reloads(mounted, "success") == 1 and reloads(mounted, "failure") == 0
    info = mounted.registry.get_sample_value(
        "gdpr_gateway_policy_info", {"system": "keycom", "version": after["keycom"]}
    )
    assert info == 1
    assert mounted.registry.get_sample_value(
        "gdpr_gateway_policy_info", {"system": "keycom", "version": before["keycom"]}
    ) is None  # only the version in force has a series
    # and it is what decides: note is now read-only
    resp = await mounted.client.patch(NOTE_URL, json={"note": "x"}, headers=EDITOR)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["code"] == "read_only"


async def test_a_bad_set_is_refused_and_the_old_one_stays(
    mounted: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    directory = mounted.settings.policies_dir or Path()
    before = await versions(mounted)
    broken = catalog()["keycom.yaml"].replace("mode: patch", "mode: sideways-secret-value")
    caplog.set_level(logging.INFO, logger="gdpr_gateway.reload")
    write_configmap(directory, catalog(**{"keycom.yaml": broken}))

    async def refused() -> bool:
        return reloads(mounted, "failure") == 1

    await until(refused, "the broken set is refused")
    assert await versions(mounted) == before
    assert mounted.registry.get_sample_value("gdpr_gateway_policy_last_reload_successful") == 0
    resp = await mounted.client.patch(NOTE_URL, json={"note": "still editable"}, headers=EDITOR)
    assert resp.status == 200
    line = next(r for r in caplog.records if getattr(r, "gdpr_fields", {}).get("result"))
    fields = line.gdpr_fields  # type: ignore[attr-defined]
    assert fields["result"] == "failure" and fields["in_force"] == "unchanged"
    assert fields["where"] and all(re.fullmatch(r"keycom\.yaml:\d+", w) for w in fields["where"])
    assert "sideways" not in caplog.text  # the position of an error, never its text

    # not tried again until the files change; then the good set goes in
    await asyncio.sleep(0.2)
    assert reloads(mounted, "failure") == 1
    write_configmap(directory, catalog(**{"keycom.yaml": catalog()["keycom.yaml"] + "\n"}))

    async def recovered() -> bool:
        return reloads(mounted, "success") == 1

    await until(recovered, "the repaired set is put in force")
    assert mounted.registry.get_sample_value("gdpr_gateway_policy_last_reload_successful") == 1


async def test_a_set_without_a_system_in_use_is_refused(mounted: Stack) -> None:
    before = await versions(mounted)
    files = catalog()
    del files["keycom.yaml"]
    write_configmap(mounted.settings.policies_dir or Path(), files)

    async def refused() -> bool:
        return reloads(mounted, "failure") == 1

    await until(refused, "a set that drops keycom is refused")
    assert await versions(mounted) == before


async def test_a_request_finishes_under_the_policy_it_started_with(mounted: Stack) -> None:
    old = (await versions(mounted))["keycom"]
    gets = (await mounted.stats("keycom")).get("GET", 0)
    await mounted.fault("keycom", latency_ms=700, methods=["GET"])
    started = asyncio.create_task(mounted.client.patch(
        NOTE_URL, json={"note": "started under the old policy"},
        headers={**EDITOR, "X-Request-Id": "old-policy-change"},
    ))

    async def reading() -> bool:  # the change has begun: it is reading the record
        return (await mounted.stats("keycom")).get("GET", 0) > gets

    await until(reading, "the change reads its pre-image")
    write_configmap(mounted.settings.policies_dir or Path(), catalog(
        **{"keycom.yaml": note_read_only(catalog()["keycom.yaml"])}
    ))

    async def swapped() -> bool:
        return (await versions(mounted))["keycom"] != old

    await until(swapped, "the read-only note policy is in force")
    new = (await versions(mounted))["keycom"]
    resp = await started
    body = await resp.json()
    # decided, masked and answered under the old policy, which allowed the note
    assert resp.status == 200 and body["applied"] is True
    assert body["policy_version"] == old
    await mounted.fault("keycom")  # no latency
    refused = await mounted.client.patch(
        NOTE_URL, json={"note": "x"}, headers={**EDITOR, "X-Request-Id": "new-policy-change"}
    )
    assert refused.status == 422

    audit = await mounted.client.get("/v1/audit", params={"system": "keycom"}, headers=AUDITOR)
    by_request: dict[str, set[str]] = {}
    for entry in (await audit.json())["entries"]:
        by_request.setdefault(entry["request_id"], set()).add(entry["policy_version"])
    assert by_request["old-policy-change"] == {old}  # its intent and its outcome
    assert by_request["new-policy-change"] == {new}


async def test_the_shipped_catalog_has_nothing_to_watch(stack: Stack) -> None:
    reloader = stack.client.app[POLICIES_KEY]  # type: ignore[index]
    assert reloader.directory is None
    assert await reloader.reload("signal") is False
    assert reloads(stack, "success") == 0 and reloads(stack, "failure") == 0


async def test_a_load_reads_one_generation_through_data(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from service.metrics import Metrics

    directory = tmp_path / "policies"
    write_configmap(directory, catalog())
    first = fingerprint(directory)
    assert source_dir(directory).name.startswith("..2026_")
    reloader = await PolicyReloader.start(
        directory, EngineKeys(b"k" * 32, b"s" * 16), Metrics(CollectorRegistry())
    )
    old = reloader.engine
    write_configmap(directory, catalog(**{"timelog.yaml": catalog()["timelog.yaml"] + "\n"}))
    assert fingerprint(directory) != first  # a new generation, though no text changed
    assert await reloader.reload("signal") is True
    assert reloader.engine is not old
    assert reloader.engine.policies.versions() == old.policies.versions()
