"""The order of one change's steps around its audit entries (issue 11: the latency one
change at a time). The intent goes to the audit store before the edit-conflict re-read
is sent, so that the read runs while the intent commits; the applied outcome goes to the
store only after the answer has left, so that the writer's work is not on the answer's
path; the access line and the request count come after the answer is written. Observed
in the order the steps start: the store's append calls, the upstream reads, and the
answer (its body built, in the step that writes it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from service import edge
from service.keys import CONNECTORS_KEY
from service.routes import customers
from tests.service.conftest import AUDITOR, EDITOR, Stack

BILLBEE = "/v1/systems/billbee/customers/1002"
KEYCOM = "/v1/systems/keycom/customers/4001"


@contextlib.contextmanager
def steps(stack: Stack, system: str) -> Iterator[list[str]]:
    """The steps of the changes made meanwhile, in the order they start."""
    events: list[str] = []
    backend = stack.audit._backend
    app: Any = stack.client.app
    connector = app[CONNECTORS_KEY][system]

    def noted(event: str, call: Any) -> Any:
        def note(*args: Any, **kwargs: Any) -> Any:
            events.append(event)
            return call(*args, **kwargs)

        return note

    async def read(customer_id: str) -> Any:  # noted when its task first runs
        events.append("upstream read")
        return await original_fetch(customer_id)

    original_fetch = connector.fetch
    patched = [
        (backend, "append_if_head", noted("store", backend.append_if_head)),
        (backend, "chain", noted("store", backend.chain)),
        (customers, "answer", noted("answer", customers.answer)),
        (connector, "fetch", read),
    ]
    before = [getattr(owner, name) for owner, name, _ in patched]
    for owner, name, replacement in patched:
        setattr(owner, name, replacement)
    try:
        yield events
    finally:
        for (owner, name, _), original in zip(patched, before, strict=True):
            setattr(owner, name, original)


async def _applied(stack: Stack, url: str, patch: dict[str, str]) -> None:
    resp = await stack.client.patch(url, json=patch, headers=EDITOR)
    assert resp.status == 200 and (await resp.json())["applied"] is True


async def test_the_intent_goes_to_the_store_before_the_conflict_reread_is_sent(
    stack: Stack,
) -> None:
    with steps(stack, "billbee") as events:
        await _applied(stack, BILLBEE, {"Tel1": "+49 30 1111111"})
    assert events[:3] == ["upstream read", "store", "upstream read"]


async def test_the_applied_outcome_goes_to_the_store_after_the_answer(stack: Stack) -> None:
    for system, url, patch in (
        ("keycom", KEYCOM, {"note": "call back"}),
        ("billbee", BILLBEE, {"Tel1": "+49 30 2222222"}),
    ):
        with steps(stack, system) as events:
            await _applied(stack, url, patch)
            await stack.audit.settle()
        assert events.count("store") == 2  # the intent, then the outcome
        assert events[-2:] == ["answer", "store"], system
    # and it is written: each change's intent has its applied outcome
    resp = await stack.client.get("/v1/audit", params={"customer_id": "1002"}, headers=AUDITOR)
    phases = [(e["phase"], e["outcome"]) for e in (await resp.json())["entries"]]
    assert sorted(phases, key=str) == [("intent", None), ("outcome", "applied")]


async def test_the_access_line_and_the_request_count_come_after_the_answer_is_written(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[bool] = []
    count_and_log = edge._count_and_log

    def noted(request: Any, response: Any, *rest: Any) -> None:
        written.append(response.prepared)  # its status line and headers went out
        count_and_log(request, response, *rest)

    monkeypatch.setattr(edge, "_count_and_log", noted)
    await _applied(stack, KEYCOM, {"note": "logged after"})
    refused = await stack.client.patch(KEYCOM, json={"note": 7}, headers=EDITOR)
    assert refused.status == 422
    assert written == [True, True]
