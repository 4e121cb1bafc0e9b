"""The audit review API and the data-subject routes, through HTTP, on both stores."""

from __future__ import annotations

import sqlite3
from typing import Any

from service.keys import AUDIT_KEY
from tests.service.conftest import AUDITOR, EDITOR, PRIVACY, Stack

NEW_PHONE = "+49 30 9090909"


async def make_change(stack: Stack) -> str:
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1002", json={"Tel1": NEW_PHONE}, headers=EDITOR
    )
    assert resp.status == 200
    audit_id: str = (await resp.json())["audit_id"]
    return audit_id


async def entries(stack: Stack, **params: str) -> list[dict[str, Any]]:
    resp = await stack.client.get("/v1/audit", params=params, headers=AUDITOR)
    assert resp.status == 200
    return list((await resp.json())["entries"])


async def test_a_change_leaves_an_intent_and_an_outcome_masked_for_review(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    intent_id = await make_change(stack)
    found = await entries(stack, system="billbee", customer_id="1002")
    by_phase = {e["phase"]: e for e in found if e["action"] == "update"}
    assert by_phase["intent"]["audit_id"] == intent_id
    assert by_phase["outcome"]["intent_id"] == intent_id
    assert by_phase["outcome"]["outcome"] == "applied"
    intent = by_phase["intent"]
    assert intent["changed"] == ["Tel1"]
    assert intent["actor"] == "demo-editor"
    assert intent["purpose"] == "customer_service"
    assert intent["policy_version"]
    assert NEW_PHONE not in str(found)  # personal values are masked in review

    one = await stack.client.get(f"/v1/audit/{intent_id}", headers=AUDITOR)
    assert one.status == 200
    assert NEW_PHONE not in await one.text()


async def test_reveal_needs_a_privacy_officer_and_a_reason_and_is_audited(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    intent_id = await make_change(stack)
    url = f"/v1/audit/{intent_id}/reveal"
    denied = await stack.client.post(url, json={"reason": "check"}, headers=AUDITOR)
    assert denied.status == 403
    no_reason = await stack.client.post(url, json={}, headers=PRIVACY)
    assert no_reason.status == 422
    assert (await no_reason.json())["errors"][0]["field"] == "reason"

    resp = await stack.client.post(url, json={"reason": "subject complaint #12"}, headers=PRIVACY)
    assert resp.status == 200
    body = await resp.json()
    assert body["entry"]["after"]["Tel1"] == NEW_PHONE
    assert resp.headers["X-Audit-Id"] == body["reveal_audit_id"]
    actions = [e["action"] for e in await entries(stack, customer_id="1002")]
    assert "reveal" in actions


async def test_unknown_audit_entry_is_404(stack: Stack) -> None:
    resp = await stack.client.get("/v1/audit/0190f0e0-0000-7000-8000-000000000000", headers=AUDITOR)
    assert resp.status == 404
    assert (await resp.json())["code"] == "audit_entry_not_found"


async def test_bad_review_parameters_are_422(stack: Stack) -> None:
    for params in ({"outcome": "bogus"}, {"cursor": "garbage"}, {"limit": "0"},
                   {"since": "yesterday"}):
        resp = await stack.client.get("/v1/audit", params=params, headers=AUDITOR)
        assert resp.status == 422, params
        assert (await resp.json())["code"] == "validation_failed"


async def test_paging_walks_every_entry_once(stack: Stack) -> None:
    for i in range(3):
        resp = await stack.client.patch(
            "/v1/systems/keycom/customers/4001", json={"note": f"n{i}"}, headers=EDITOR
        )
        assert resp.status == 200
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", "system": "keycom"}
        if cursor:
            params["cursor"] = cursor
        resp = await stack.client.get("/v1/audit", params=params, headers=AUDITOR)
        body = await resp.json()
        seen += [e["audit_id"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6  # three intents, three outcomes
    assert seen == sorted(seen, reverse=True)  # newest first


async def test_verify_export_and_erase(any_store_stack: Stack) -> None:
    stack = any_store_stack
    await make_change(stack)
    verify = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert verify["ok"] is True and verify["entries"] >= 2 and verify["first_bad"] is None

    export = await stack.client.get("/v1/subjects/billbee/1002/export", headers=PRIVACY)
    assert export.status == 200
    exported = await export.json()
    assert any(e["after"].get("Tel1") == NEW_PHONE for e in exported["entries"])

    auditor_erase = await stack.client.post(
        "/v1/subjects/billbee/1002/erase", json={"reason": "Art. 17 request"}, headers=AUDITOR
    )
    assert auditor_erase.status == 403
    erase = await stack.client.post(
        "/v1/subjects/billbee/1002/erase", json={"reason": "Art. 17 request"}, headers=PRIVACY
    )
    assert erase.status == 200
    assert (await erase.json())["erased"] is True

    after = await (
        await stack.client.get("/v1/subjects/billbee/1002/export", headers=PRIVACY)
    ).json()
    assert NEW_PHONE not in str(after)
    assert any(e["after"].get("Tel1") == "erased" for e in after["entries"])
    verify = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert verify["ok"] is True


async def test_subject_routes_check_the_system(stack: Stack) -> None:
    resp = await stack.client.get("/v1/subjects/nosuch/1/export", headers=PRIVACY)
    assert resp.status == 404
    assert (await resp.json())["code"] == "unknown_system"


async def test_systems_and_policy_routes(stack: Stack) -> None:
    resp = await stack.client.get("/v1/systems", headers=AUDITOR)
    systems = {s["system"]: s for s in (await resp.json())["systems"]}
    assert set(systems) == {"timelog", "billbee", "sedona", "keycom"}
    assert systems["keycom"]["mode"] == "patch" and systems["billbee"]["mode"] == "put"
    resp = await stack.client.get("/v1/systems/sedona/policy", headers=AUDITOR)
    table = await resp.json()
    assert table["policy_version"] == systems["sedona"]["policy_version"]
    names = {row.get("path") or row.get("field") for row in table["fields"]}
    assert {"CustomerName", "CustomerBillPrimary.Email"} <= names
    assert (await stack.client.get("/v1/systems")).status == 401


async def test_metrics_count_requests_and_decisions_without_ids(stack: Stack) -> None:
    await make_change(stack)
    await stack.client.patch(
        "/v1/systems/billbee/customers/1001", json={"Tel1": "+49 30 1212121"}, headers=EDITOR
    )
    text = await (await stack.client.get("/metrics")).text()
    series = "gdpr_gateway_decisions_total"
    archived = f'{series}{{code="customer_archived",outcome="denied",system="billbee"}}'
    allowed = f'{series}{{code="none",outcome="allowed",system="billbee"}}'
    assert f"{archived} 1.0" in text
    assert f"{allowed} 1.0" in text
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert not any("1002" in ln.split(" ")[0] or "1001" in ln.split(" ")[0] for ln in lines)
    assert "demo-editor" not in text


async def test_probes(stack: Stack) -> None:
    assert (await stack.client.get("/healthz")).status == 200
    ready = await stack.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"accepting": True, "policies": True, "audit": True}
    assert stack.registry.get_sample_value("gdpr_gateway_audit_store_up") == 1.0
    doc = await stack.client.get("/openapi.yaml")
    assert doc.status == 200 and (await doc.text()).startswith("openapi: 3.1")


async def test_readiness_and_the_store_gauge_fall_when_the_store_stops_answering(
    stack: Stack,
) -> None:
    """What the AuditStoreUnavailable alert of the chart reads."""
    assert (await stack.client.get("/readyz")).status == 200
    await stack.client.app[AUDIT_KEY].close()  # as a lost connection pool would
    ready = await stack.client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["audit"] is False
    assert stack.registry.get_sample_value("gdpr_gateway_audit_store_up") == 0.0


async def test_each_verification_is_counted_by_result(stack: Stack) -> None:
    """What the AuditChainBroken alert of the chart reads."""
    await make_change(stack)
    counted = stack.registry.get_sample_value
    ok = {"result": "ok"}
    broken = {"result": "broken"}
    assert counted("gdpr_gateway_audit_verifications_total", ok) == 0.0
    assert (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).status == 200
    assert counted("gdpr_gateway_audit_verifications_total", ok) == 1.0
    raw = sqlite3.connect(stack.settings.audit_url.removeprefix("sqlite+aiosqlite:///"))
    raw.execute("UPDATE audit_entry SET hash = 'tampered' WHERE seq = 1")
    raw.commit()
    raw.close()
    report = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert report["ok"] is False
    assert counted("gdpr_gateway_audit_verifications_total", broken) == 1.0
    assert counted("gdpr_gateway_audit_verifications_total", ok) == 1.0
