"""Honest outcomes of a forward (issue 8, items 6 and 14), through HTTP against the
emulators: a change that may have reached the upstream is never answered "nothing
changed" (502) and never resent blindly; a read tells whether it landed.

- sent, no usable answer (reset, timeout, cut-short 200), not landed: 504
  ``upstream_timeout``, the audit outcome ``unknown``, exactly one write sent;
- the same, but the upstream did apply it (the emulator's ``after_write``): the
  gateway's read-back sees the change, 200, the audit outcome ``applied``;
- a whole-object PUT is not resent after such a failure, so it cannot overwrite a
  change someone made upstream after the first PUT landed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from service.keys import CONNECTORS_KEY, GATEWAY_KEY
from service.settings import Settings
from tests.service.conftest import AUDITOR, EDITOR, Stack, make_stack, once_intent_durable

KEYCOM = "/v1/systems/keycom/customers/4001"
BILLBEE = "/v1/systems/billbee/customers/1002"


def _quick_timeouts(settings: Settings) -> Settings:
    upstreams = {
        name: dataclasses.replace(up, timeout_seconds=0.6, backoff_max_seconds=0.05)
        for name, up in settings.upstreams.items()
    }
    return dataclasses.replace(settings, upstreams=upstreams)


@pytest.fixture
async def quick(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in make_stack(aiohttp_client, tmp_path, tweak=_quick_timeouts):
        yield s


async def _outcome(stack: Stack, intent_id: str) -> dict[str, Any]:
    resp = await stack.client.get("/v1/audit", params={"limit": "500"}, headers=AUDITOR)
    for entry in (await resp.json())["entries"]:
        if entry["intent_id"] == intent_id:
            return dict(entry)
    raise AssertionError("no outcome for the intent")


async def _unknown(stack: Stack, resp: Any) -> None:
    """504 upstream_timeout whose detail says the outcome is unknown, audited so."""
    assert resp.status == 504, await resp.text()
    problem = await resp.json()
    assert problem["code"] == "upstream_timeout"
    assert "unknown" in problem["detail"]
    outcome = await _outcome(stack, resp.headers["X-Audit-Id"])
    assert outcome["outcome"] == "unknown"
    assert outcome["problem_code"] == "upstream_timeout"


# -- item 6: a PATCH that was sent and got no usable answer -----------------------------


@pytest.mark.parametrize("fault", [{"reset": 1}, {"malformed": 1}, {"hang": 1}])
async def test_a_patch_sent_without_a_usable_answer_is_unknown_not_failed(
    quick: Stack, fault: dict[str, Any]
) -> None:
    await quick.fault("keycom", methods=["PATCH"], **fault)
    resp = await quick.client.patch(KEYCOM, json={"note": "maybe landed"}, headers=EDITOR)
    await _unknown(quick, resp)
    assert (await quick.stats("keycom"))["PATCH"] == 1
    assert quick.store("keycom").get(4001)["note"] != "maybe landed"


@pytest.mark.parametrize("fault", [{"reset": 1}, {"malformed": 1}, {"hang": 1}])
async def test_a_patch_the_upstream_applied_before_the_answer_was_lost_is_applied(
    quick: Stack, fault: dict[str, Any]
) -> None:
    await quick.fault("keycom", methods=["PATCH"], after_write=True, **fault)
    resp = await quick.client.patch(KEYCOM, json={"note": "landed"}, headers=EDITOR)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["applied"] is True
    assert quick.store("keycom").get(4001)["note"] == "landed"
    outcome = await _outcome(quick, body["audit_id"])
    assert outcome["outcome"] == "applied"
    assert outcome["problem_code"] == "upstream_timeout"  # confirmed by a read, not answered
    assert (await quick.stats("keycom"))["PATCH"] == 1


# -- items 6 and 14: a whole-object PUT is never resent once it may have landed ---------


@pytest.mark.parametrize("fault", [{"reset": 1}, {"malformed": 1}, {"hang": 1}])
async def test_a_put_sent_without_a_usable_answer_is_not_resent(
    quick: Stack, fault: dict[str, Any]
) -> None:
    await quick.fault("billbee", methods=["PUT"], **fault)
    resp = await quick.client.patch(BILLBEE, json={"Tel1": "+49 30 2468024"}, headers=EDITOR)
    await _unknown(quick, resp)
    assert (await quick.stats("billbee"))["PUT"] == 1


@contextmanager
def changed_right_after_the_first_write(stack: Stack, system: str, customer: int,
                                        change: dict[str, Any]) -> Iterator[None]:
    """Someone edits the record upstream right after the gateway's first write lands
    (before any re-send could): instruments the emulator's store."""
    store = stack.store(system)
    original_put = store.put
    done = {"first": False}

    def put(customer_id: int, record: Any) -> None:
        original_put(customer_id, record)
        if not done["first"] and customer_id == customer:
            done["first"] = True
            original_put(customer_id, {**record, **change})

    store.put = put
    try:
        yield
    finally:
        store.put = original_put


@pytest.mark.parametrize("fault", [{"reset": 1}, {"malformed": 1}, {"hang": 1}])
async def test_a_put_whose_answer_was_lost_does_not_overwrite_a_later_change(
    quick: Stack, fault: dict[str, Any]
) -> None:
    await quick.fault("billbee", methods=["PUT"], after_write=True, **fault)
    with changed_right_after_the_first_write(quick, "billbee", 1002, {"Name": "Edited Upstream"}):
        resp = await quick.client.patch(BILLBEE, json={"Tel1": "+49 30 1122334"}, headers=EDITOR)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["applied"] is True
    stored = quick.store("billbee").get(1002)
    assert stored["Tel1"] == "+49 30 1122334"
    assert stored["Name"] == "Edited Upstream"  # a re-sent whole object would have undone it
    assert (await quick.stats("billbee"))["PUT"] == 1


# -- what provably never left stays "nothing changed" -----------------------------------


async def test_a_503_is_still_retried_for_a_put_and_a_persistent_one_changed_nothing(
    quick: Stack,
) -> None:
    await quick.fault("billbee", methods=["PUT"], status=503, count=10)
    resp = await quick.client.patch(BILLBEE, json={"Tel1": "+49 30 5550000"}, headers=EDITOR)
    assert resp.status == 502
    assert (await resp.json())["code"] == "upstream_error"
    outcome = await _outcome(quick, resp.headers["X-Audit-Id"])
    assert outcome["outcome"] == "upstream_failed"
    assert (await quick.stats("billbee"))["PUT"] == 1 + quick.settings.upstreams[
        "billbee"
    ].max_retries


@pytest.mark.parametrize("conflict_check", [True, False])
async def test_a_write_the_breaker_stopped_provably_never_left_and_is_502(
    quick: Stack, conflict_check: bool
) -> None:
    """The breaker opens between the gateway's read and its write (another request's
    failure, here reported to the real breaker while the intent is written): the write
    (or the edit-conflict re-read before it) is never sent, so the answer is "nothing
    changed", not "unknown", and names the audit entry that says so."""
    quick.client.app[GATEWAY_KEY].conflict_check = conflict_check  # type: ignore[index]
    connector = quick.client.app[CONNECTORS_KEY]["keycom"]  # type: ignore[index]
    connector.breaker.threshold = 1
    with once_intent_durable(quick.audit, connector.breaker.record_failure):
        resp = await quick.client.patch(KEYCOM, json={"note": "never sent"}, headers=EDITOR)
    assert resp.status == 502
    assert (await resp.json())["code"] == "upstream_error"
    assert (await _outcome(quick, resp.headers["X-Audit-Id"]))["outcome"] == "upstream_failed"
    assert (await quick.stats("keycom")).get("PATCH", 0) == 0


async def test_a_patch_whose_read_goes_unanswered_changed_nothing_and_is_502(
    quick: Stack,
) -> None:
    """Only a change that may have landed is answered 504: a read before the write that
    times out leaves nothing written."""
    attempts = 1 + quick.settings.upstreams["keycom"].max_retries
    await quick.fault("keycom", methods=["GET"], hang=attempts)
    resp = await quick.client.patch(KEYCOM, json={"note": "not even sent"}, headers=EDITOR)
    assert resp.status == 502
    problem = await resp.json()
    assert problem["code"] == "upstream_error" and "nothing was written" in problem["detail"]
    assert (await quick.stats("keycom")).get("PATCH", 0) == 0


async def test_an_applied_outcome_is_not_waited_for_a_failed_one_is(quick: Stack) -> None:
    """The answer to an applied change does not wait for its outcome's sync (the
    reconciler covers a lost one: docs/reliability.md); an outcome that says nothing was
    applied is durable before the answer. Both are then read back through the API."""
    audit = quick.audit
    original_finish = audit.finish
    durable: dict[str, bool] = {}

    async def finish(intent_id: str, outcome: Any, **kw: Any) -> str:
        durable[outcome.outcome] = kw.get("durable", True)
        result: str = await original_finish(intent_id, outcome, **kw)
        return result

    audit.finish = finish
    try:
        ok = await quick.client.patch(KEYCOM, json={"note": "lazily"}, headers=EDITOR)
        await quick.fault("billbee", methods=["PUT"], status=500, count=10)
        failed = await quick.client.patch(BILLBEE, json={"Tel1": "+49 30 5550001"}, headers=EDITOR)
    finally:
        audit.finish = original_finish
    assert (ok.status, failed.status) == (200, 502)
    assert durable == {"applied": False, "upstream_failed": True}
    assert (await _outcome(quick, ok.headers["X-Audit-Id"]))["outcome"] == "applied"
    assert (await _outcome(quick, failed.headers["X-Audit-Id"]))["outcome"] == "upstream_failed"
