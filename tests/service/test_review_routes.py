"""The review page's routes through the real app, on both stores: one row per change
(``GET /v1/audit/changes``) and the trend per day and system (``GET /v1/audit/trends``)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import audit.entries
from audit import Intent
from common.vocabulary import Action
from tests.service.conftest import (
    AUDITOR,
    EDITOR,
    PRIVACY,
    SCOPED_AUDITOR,
    Stack,
    make_stack,
)
from tests.service.test_openapi import assert_conforms, load_spec

CHANGES = "/v1/audit/changes"
TRENDS = "/v1/audit/trends"
NEW_PHONE = "+49 30 5550101"


async def patch(stack: Stack, system: str, cid: str, body: dict[str, Any]) -> Any:
    return await stack.client.patch(
        f"/v1/systems/{system}/customers/{cid}", json=body, headers=EDITOR
    )


async def rows(stack: Stack, headers: dict[str, str] = AUDITOR, **params: str) -> Any:
    async with stack.client.get(CHANGES, params=params, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert await assert_conforms(load_spec(), CHANGES, response) is None
        return await response.json()


async def test_one_row_per_change_intent_joined_with_its_outcome(any_store_stack: Stack) -> None:
    stack = any_store_stack
    changed = await patch(stack, "billbee", "1002", {"Tel1": NEW_PHONE})
    assert changed.status == 200
    intent_id = (await changed.json())["audit_id"]
    refused = await patch(stack, "billbee", "1001", {"Tel1": NEW_PHONE})  # archived
    assert refused.status == 409
    refusal_id = refused.headers["X-Audit-Id"]

    body = await rows(stack, system="billbee")
    by_id = {r["change_id"]: r for r in body["changes"]}
    change = by_id[intent_id]
    assert change["action"] == "update" and change["outcome"] == "applied"
    assert change["dangling"] is False and len(change["entries"]) == 2
    assert change["entries"][0] == intent_id
    assert change["changed"] == ["Tel1"]
    assert change["before"] == {"Tel1": "***"} and change["after"] == {"Tel1": "***"}
    assert (change["actor"], change["purpose"]) == ("demo-editor", "customer_service")
    assert change["outcome_time"] >= change["time"]
    refusal = by_id[refusal_id]
    assert (refusal["outcome"], refusal["problem_code"]) == ("rejected", "customer_archived")
    assert refusal["entries"] == [refusal_id] and refusal["dangling"] is False
    # the raw log has the change as two entries; the rows never list an outcome alone
    raw = await (await stack.client.get("/v1/audit", headers=AUDITOR)).json()
    outcome_id = next(e["audit_id"] for e in raw["entries"] if e["intent_id"] == intent_id)
    assert outcome_id == change["entries"][1]
    assert outcome_id not in by_id
    assert NEW_PHONE not in str(body)


async def test_a_dangling_intent_is_marked(any_store_stack: Stack) -> None:
    stack = any_store_stack
    intent_id = await stack.audit.begin(
        Intent(
            actor="demo-editor", roles=("editor",), system="sedona", customer_id="2001",
            purpose="customer_service", request_id="r-dangling", action=Action.UPDATE,
            changed=("CustomerName2",), before={"CustomerName2": "a"},
            after={"CustomerName2": "b"}, protected={"CustomerName2": "personal"},
            policy_version="v",
        )
    )  # fmt: skip
    (row,) = (await rows(stack, system="sedona", customer_id="2001"))["changes"]
    assert row["change_id"] == intent_id
    assert row["dangling"] is True and row["outcome"] is None and row["entries"] == [intent_id]


async def test_the_subject_view_lists_every_row_oldest_first_with_paging(stack: Stack) -> None:
    for n in range(3):
        assert (await patch(stack, "sedona", "2001", {"CustomerName2": f"Name {n}"})).status == 200
    assert (await patch(stack, "billbee", "1002", {"Tel1": NEW_PHONE})).status == 200
    reveal_target = (await rows(stack, system="sedona", customer_id="2001"))["changes"][0]
    revealed = await stack.client.post(
        f"/v1/audit/{reveal_target['change_id']}/reveal", json={"reason": "ticket 7"},
        headers=PRIVACY,
    )  # fmt: skip
    assert revealed.status == 200

    oldest = await rows(stack, system="sedona", customer_id="2001", order="oldest")
    actions = [r["action"] for r in oldest["changes"]]
    assert actions == ["update", "update", "update", "reveal"]
    times = [r["time"] for r in oldest["changes"]]
    assert times == sorted(times)
    assert oldest["changes"][-1]["reason"] == "ticket 7"
    assert {r["customer_id"] for r in oldest["changes"]} == {"2001"}

    first = await rows(stack, system="sedona", customer_id="2001", order="oldest", limit="2")
    assert first["next_cursor"] is not None
    second = await rows(stack, system="sedona", customer_id="2001", order="oldest", limit="2",
                        cursor=first["next_cursor"])  # fmt: skip
    ids = [r["change_id"] for r in first["changes"] + second["changes"]]
    assert ids == [r["change_id"] for r in oldest["changes"]] and second["next_cursor"] is None
    newest = await rows(stack, system="sedona", customer_id="2001", limit="3")
    assert [r["change_id"] for r in newest["changes"]] == ids[::-1][:3]


async def test_a_scoped_reviewer_sees_rows_of_its_systems_only(stack: Stack) -> None:
    assert (await patch(stack, "billbee", "1002", {"Tel1": NEW_PHONE})).status == 200
    assert (await patch(stack, "sedona", "2001", {"CustomerName2": "X"})).status == 200
    body = await rows(stack, SCOPED_AUDITOR)
    assert {r["system"] for r in body["changes"]} == {"billbee"}
    refused = await stack.client.get(CHANGES, params={"system": "sedona"}, headers=SCOPED_AUDITOR)
    assert refused.status == 403
    trend = await stack.client.get(TRENDS, params={"system": "sedona"}, headers=SCOPED_AUDITOR)
    assert trend.status == 403
    trend = await (await stack.client.get(TRENDS, headers=SCOPED_AUDITOR)).json()
    assert {cell["system"] for cell in trend["series"]} == {"billbee"}


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        (CHANGES, {"order": "sideways"}, "order"),
        (CHANGES, {"cursor": "garbage"}, "cursor"),
        (CHANGES, {"customer_id": "a b"}, "customer_id"),
        (CHANGES, {"limit": "501"}, "limit"),
        (CHANGES, {"since": "yesterday"}, "since"),
        (TRENDS, {"since": "2026-13-01"}, "since"),
        (TRENDS, {"until": "2026-11-3"}, "until"),
        (TRENDS, {"since": "2026-11-30", "until": "2026-11-01"}, "since"),
        (TRENDS, {"since": "2024-01-01", "until": "2026-01-01"}, "since"),
    ],
)
async def test_bad_parameters_are_named(
    stack: Stack, route: str, params: dict[str, str], field: str
) -> None:
    async with stack.client.get(route, params=params, headers=AUDITOR) as response:
        assert response.status == 422
        assert await assert_conforms(load_spec(), route, response) == "validation_failed"
        body = await response.json()
    assert [e["field"] for e in body["errors"]] == [field]


async def test_an_editor_may_not_review(stack: Stack) -> None:
    for route in (CHANGES, TRENDS):
        async with stack.client.get(route, headers=EDITOR) as response:
            assert response.status == 403
            assert await assert_conforms(load_spec(), route, response) == "forbidden"


def _day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


async def test_the_trend_counts_changes_refusals_by_code_and_reveals_per_day_and_system(
    any_store_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = any_store_stack
    # three days ago: two refusals (an archived customer, a bad field) and a change
    earlier = f"{_day(3)}T09:30:00.000000Z"
    monkeypatch.setattr(audit.entries, "now_iso", lambda: earlier)
    assert (await patch(stack, "billbee", "1001", {"Tel1": NEW_PHONE})).status == 409
    assert (await patch(stack, "billbee", "1002", {"NoSuchField": 1})).status == 422
    assert (await patch(stack, "billbee", "1002", {"Tel1": NEW_PHONE})).status == 200
    monkeypatch.undo()
    # today: a change on sedona, a refusal, and a reveal
    changed = await patch(stack, "sedona", "2001", {"CustomerName2": "Trend"})
    assert changed.status == 200
    assert (await patch(stack, "billbee", "1001", {"Tel1": NEW_PHONE})).status == 409
    reveal = await stack.client.post(
        f"/v1/audit/{(await changed.json())['audit_id']}/reveal", json={"reason": "check"},
        headers=PRIVACY,
    )  # fmt: skip
    assert reveal.status == 200

    async with stack.client.get(TRENDS, headers=AUDITOR) as response:
        assert response.status == 200
        assert await assert_conforms(load_spec(), TRENDS, response) is None
        body = await response.json()
    assert body["days"] == [_day(n) for n in range(6, -1, -1)]
    cells = {(c["day"], c["system"]): c for c in body["series"]}
    earlier_billbee = cells[(_day(3), "billbee")]
    assert earlier_billbee["refusals"] == {"customer_archived": 1, "validation_failed": 1}
    assert earlier_billbee["changes"] == 1 and earlier_billbee["reveals"] == 0
    assert cells[(_day(0), "sedona")]["changes"] == 1
    assert cells[(_day(0), "sedona")]["reveals"] == 1
    assert cells[(_day(0), "billbee")]["refusals"] == {"customer_archived": 1}
    assert body["totals"] == {"changes": 2, "failed": 0, "reveals": 1,
                              "refusals": {"customer_archived": 2, "validation_failed": 1}}

    only = await (await stack.client.get(
        TRENDS, params={"system": "sedona", "since": _day(1), "until": _day(0)}, headers=AUDITOR
    )).json()  # fmt: skip
    assert only["days"] == [_day(1), _day(0)]
    assert [(c["day"], c["system"]) for c in only["series"]] == [(_day(0), "sedona")]
    past = await (await stack.client.get(
        TRENDS, params={"since": _day(20), "until": _day(10)}, headers=AUDITOR
    )).json()  # fmt: skip
    assert past["series"] == [] and len(past["days"]) == 11


@pytest.fixture
async def without_expiry_job(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Stack]:
    """A stack without the audit expiry job: its first run (at start) reads
    ``audit_subject_key``, and when it lands inside a test's recording of the store's
    queries is a matter of timing."""
    quiet = lambda s: dataclasses.replace(s, audit_expire_seconds=0)  # noqa: E731
    async for s in make_stack(aiohttp_client, tmp_path, tweak=quiet):
        yield s


async def test_the_trend_reads_the_query_columns_never_the_bodies(
    without_expiry_job: Stack,
) -> None:
    stack = without_expiry_job
    assert (await patch(stack, "billbee", "1001", {"Tel1": NEW_PHONE})).status == 409
    backend = stack.audit._backend
    seen: list[str] = []
    original = backend.fetchall

    async def recording(sql: str, params: Any = ()) -> Any:
        seen.append(sql)
        return await original(sql, params)

    backend.fetchall = recording
    try:
        body = await (await stack.client.get(TRENDS, headers=AUDITOR)).json()
    finally:
        backend.fetchall = original
    assert body["totals"]["refusals"] == {"customer_archived": 1}
    assert seen and all("body" not in sql and "audit_subject_key" not in sql for sql in seen)
