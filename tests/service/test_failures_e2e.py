"""Upstream failures, conflicts and an unavailable audit store, through HTTP."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.service.conftest import AUDITOR, EDITOR, Stack, once_intent_durable

URL = "/v1/systems/billbee/customers/1002"


async def outcomes(stack: Stack, system: str = "billbee", customer: str = "1002") -> list[Any]:
    resp = await stack.client.get(
        "/v1/audit", params={"system": system, "customer_id": customer}, headers=AUDITOR
    )
    body = await resp.json()
    return [(e["phase"], e["outcome"], e["problem_code"]) for e in body["entries"]]


async def test_upstream_5xx_is_502_and_audited_as_upstream_failed(stack: Stack) -> None:
    await stack.fault("billbee", status=500, count=10, methods=["PUT"])
    resp = await stack.client.patch(URL, json={"Tel1": "+49 30 3333333"}, headers=EDITOR)
    assert resp.status == 502
    body = await resp.json()
    assert body["code"] == "upstream_error"
    assert resp.headers["X-Audit-Id"]
    assert ("outcome", "upstream_failed", "upstream_error") in await outcomes(stack)
    assert stack.store("billbee").get(1002)["Tel1"] != "+49 30 3333333"


async def test_upstream_that_never_answers_is_504_and_the_outcome_unknown(stack: Stack) -> None:
    await stack.fault("billbee", hang=5, methods=["PUT"])
    resp = await stack.client.patch(URL, json={"Tel1": "+49 30 4444444"}, headers=EDITOR)
    assert resp.status == 504
    assert (await resp.json())["code"] == "upstream_timeout"
    assert ("outcome", "unknown", "upstream_timeout") in await outcomes(stack)


async def test_upstream_rate_limit_is_429_with_retry_after(stack: Stack) -> None:
    await stack.fault("billbee", status=429, count=20, retry_after=1, methods=["PUT"])
    resp = await stack.client.patch(URL, json={"Tel1": "+49 30 5555555"}, headers=EDITOR)
    assert resp.status == 429
    assert (await resp.json())["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    assert ("outcome", "upstream_failed", "rate_limited") in await outcomes(stack)


async def test_if_match_with_a_stale_tag_is_412_and_nothing_is_forwarded(stack: Stack) -> None:
    read = await stack.client.get(URL, headers=EDITOR)
    etag = read.headers["ETag"]
    # someone changes the record in billbee directly
    record = stack.store("billbee").get(1002)
    record["Name"] = "Changed Elsewhere"
    stack.store("billbee").put(1002, record)
    resp = await stack.client.patch(
        URL, json={"Tel1": "+49 30 6666666"}, headers={**EDITOR, "If-Match": etag}
    )
    assert resp.status == 412
    assert (await resp.json())["code"] == "precondition_failed"
    assert (await stack.stats("billbee")).get("PUT", 0) == 0


async def test_if_match_with_the_current_tag_goes_through(stack: Stack) -> None:
    read = await stack.client.get(URL, headers=EDITOR)
    resp = await stack.client.patch(
        URL, json={"Tel1": "+49 30 6666667"}, headers={**EDITOR, "If-Match": read.headers["ETag"]}
    )
    assert resp.status == 200
    assert (await stack.stats("billbee")).get("PUT") == 1


@contextlib.contextmanager
def changed_before_second_read(
    stack: Stack, system: str, change: Callable[[dict[str, Any]], None]
) -> Iterator[None]:
    """Instrument the emulator's store: right before the gateway's second read of a
    record (its edit-conflict check), someone else changes the record upstream."""
    store = stack.store(system)
    original_get = store.get
    calls = {"n": 0}

    def get(customer_id: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            record = original_get(customer_id)
            change(record)
            store.put(customer_id, record)
        return original_get(customer_id)

    store.get = get
    try:
        yield
    finally:
        store.get = original_get


async def test_record_changed_between_read_and_write_is_an_edit_conflict(stack: Stack) -> None:
    with changed_before_second_read(
        stack, "billbee", lambda r: r.update(Name="Changed Meanwhile")
    ):
        resp = await stack.client.patch(URL, json={"Tel1": "+49 30 7777777"}, headers=EDITOR)
    assert resp.status == 409
    assert (await resp.json())["code"] == "edit_conflict"
    assert (await stack.stats("billbee")).get("PUT", 0) == 0
    assert ("outcome", "rejected", "edit_conflict") in await outcomes(stack)


async def test_billbee_change_reads_twice_and_writes_once(stack: Stack) -> None:
    """A whole-object write re-reads before it (the edit-conflict check): 2 GET, 1 PUT."""
    resp = await stack.client.patch(URL, json={"Tel1": "+49 30 7777778"}, headers=EDITOR)
    assert resp.status == 200
    stats = await stack.stats("billbee")
    assert (stats.get("GET"), stats.get("PUT")) == (2, 1)


async def test_keycom_change_reads_once_and_patches_once(stack: Stack) -> None:
    """A native partial update needs no edit-conflict re-read: 1 GET, 1 PATCH."""
    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4001", json={"note": "call back"}, headers=EDITOR
    )
    assert resp.status == 200
    stats = await stack.stats("keycom")
    assert (stats.get("GET"), stats.get("PATCH")) == (1, 1)


async def test_keycom_edit_of_another_field_meanwhile_is_not_lost(stack: Stack) -> None:
    """Someone changes a field upstream between the gateway's read and its write (here
    while the intent is written): the PATCH sends only the changed field, so the other
    edit survives; the gateway's own field is written."""
    store = stack.store("keycom")

    def edit_elsewhere() -> None:
        record = store.get(4001)
        record.update(phone="+358 40 555 0199", modified="2030-01-01T00:00:00.000000Z")
        store.put(4001, record)

    with once_intent_durable(stack.audit, edit_elsewhere):
        resp = await stack.client.patch(
            "/v1/systems/keycom/customers/4001", json={"note": "call back"}, headers=EDITOR
        )
    assert resp.status == 200
    final = store.get(4001)
    assert (final["phone"], final["note"]) == ("+358 40 555 0199", "call back")


async def test_audit_store_down_is_503_and_nothing_is_forwarded(
    stack: Stack, tmp_path: Path
) -> None:
    # break the store from outside, as a full disk or a lost volume would
    raw = sqlite3.connect(tmp_path / "audit.db")
    tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        if table != "alembic_version":
            raw.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_gone"')
    raw.commit()
    raw.close()
    resp = await stack.client.patch(URL, json={"Tel1": "+49 30 8888888"}, headers=EDITOR)
    assert resp.status == 503
    assert (await resp.json())["code"] == "audit_unavailable"
    assert (await stack.stats("billbee")).get("PUT", 0) == 0
    assert stack.store("billbee").get(1002)["Tel1"] != "+49 30 8888888"


async def test_a_caller_over_its_rate_is_429_before_anything_is_read(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    import dataclasses

    from tests.service.conftest import make_stack

    async for stack in make_stack(
        aiohttp_client, tmp_path,
        tweak=lambda s: dataclasses.replace(
            s, caller_rate_limit_per_second=0.5, caller_rate_limit_burst=2
        ),
    ):
        statuses = []
        for i in range(3):
            resp = await stack.client.patch(
                URL, json={"Tel1": f"+49 30 111222{i}"}, headers=EDITOR
            )
            statuses.append(resp.status)
        assert statuses == [200, 200, 429]
        assert (await resp.json())["code"] == "rate_limited"
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await stack.stats("billbee")).get("PUT") == 2
        # another caller has a budget of its own
        other = await stack.client.get(URL, headers=AUDITOR)
        assert other.status == 200


async def test_an_edit_conflict_whose_outcome_cannot_be_recorded_is_503_not_504(
    stack: Stack, tmp_path: Path
) -> None:
    """Nothing was sent (the re-read saw another change), then the store fails as the
    refusal is recorded: the answer is 503 audit_unavailable ("nothing changed"), never
    the 504 that tells the caller the change may have landed. The intent stays open for
    the reconciler."""

    def store_gone() -> None:
        # the store goes away once the intent is durable, as a lost volume would
        raw = sqlite3.connect(tmp_path / "audit.db")
        raw.execute('ALTER TABLE "audit_entry" RENAME TO "audit_entry_gone"')
        raw.commit()
        raw.close()

    with once_intent_durable(stack.audit, store_gone), changed_before_second_read(
        stack, "billbee", lambda r: r.update(Name="Changed Meanwhile")
    ):
        resp = await stack.client.patch(URL, json={"Tel1": "+49 30 7777778"}, headers=EDITOR)
    assert resp.status == 503
    assert (await resp.json())["code"] == "audit_unavailable"
    assert (await stack.stats("billbee")).get("PUT", 0) == 0
