"""Each of the four systems through the gateway against its emulator, over loopback."""

from __future__ import annotations

from typing import Any

from policies.masking.base import REDACTED
from service.keys import POLICIES_KEY
from service.registry import build_connector
from tests.service.conftest import AUDITOR, EDITOR, PRIVACY, Stack


async def audit_entries(stack: Stack, system: str, customer_id: str) -> list[dict[str, Any]]:
    resp = await stack.client.get(
        "/v1/audit", params={"system": system, "customer_id": customer_id}, headers=AUDITOR
    )
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return list(body["entries"])


# -- billbee: read, refuse if archived, merge, PUT ---------------------------------------


async def test_billbee_patch_reaches_upstream_as_a_merged_whole_object(stack: Stack) -> None:
    before = stack.store("billbee").get(1002)
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1002", json={"Tel1": "+49 30 7654321"}, headers=EDITOR
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["applied"] is True and body["dry_run"] is False
    assert body["changed"] == ["Tel1"]
    assert body["audit_id"] == resp.headers["X-Audit-Id"]
    assert body["policy_version"]
    after = stack.store("billbee").get(1002)
    assert after["Tel1"] == "+49 30 7654321"
    # the whole object went up, so nothing else was cleared
    for key in ("Name", "Email", "DefaultMailAddress", "Number", "VatId"):
        assert after[key] == before[key]
    assert (await stack.stats("billbee")).get("PUT") == 1
    # the editor's answer is masked: a personal value never comes back in clear
    assert body["customer"]["Tel1"] != "+49 30 7654321"
    assert body["customer"]["Tel1"].endswith("21")


async def test_billbee_archived_customer_is_refused_and_nothing_reaches_billbee(
    stack: Stack,
) -> None:
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1001", json={"Tel1": "+49 30 1111111"}, headers=EDITOR
    )
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "customer_archived"
    assert (await stack.stats("billbee")).get("PUT", 0) == 0
    entries = await audit_entries(stack, "billbee", "1001")
    assert [(e["outcome"], e["problem_code"]) for e in entries] == [
        ("rejected", "customer_archived")
    ]


async def test_billbee_purpose_not_allowed_for_a_billing_field(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1002", json={"VatId": "DE999888777"}, headers=EDITOR
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "purpose_not_allowed"
    ok = await stack.client.patch(
        "/v1/systems/billbee/customers/1002",
        json={"VatId": "DE999888777"},
        headers={**EDITOR, "X-Purpose": "billing"},
    )
    assert ok.status == 200
    assert (await stack.stats("billbee")).get("PUT") == 1


async def test_billbee_dry_run_decides_audits_and_forwards_nothing(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1002?dry_run=true",
        json={"Tel1": "+49 30 2222222"},
        headers=EDITOR,
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["applied"] is False and body["dry_run"] is True
    assert body["changed"] == ["Tel1"]
    assert (await stack.stats("billbee")).get("PUT", 0) == 0
    assert stack.store("billbee").get(1002)["Tel1"] != "+49 30 2222222"
    entries = await audit_entries(stack, "billbee", "1002")
    assert [e["action"] for e in entries if e["action"] != "read"] == ["dry_run"]


async def test_billbee_patch_that_changes_nothing_is_not_forwarded(stack: Stack) -> None:
    current = stack.store("billbee").get(1002)["Tel1"]
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1002", json={"Tel1": current}, headers=EDITOR
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["applied"] is False and body["changed"] == []
    assert (await stack.stats("billbee")).get("PUT", 0) == 0


async def test_billbee_nested_contact_object_merges(stack: Stack) -> None:
    before = stack.store("billbee").get(1002)["DefaultMailAddress"]
    resp = await stack.client.patch(
        "/v1/systems/billbee/customers/1002",
        json={"DefaultMailAddress": {"Value": "new.mail@example.net"}},
        headers=EDITOR,
    )
    assert resp.status == 200
    assert (await resp.json())["changed"] == ["DefaultMailAddress.Value"]
    after = stack.store("billbee").get(1002)["DefaultMailAddress"]
    assert after["Value"] == "new.mail@example.net"
    assert after["Id"] == before["Id"] and after["TypeId"] == before["TypeId"]


# -- timelog: the read model does not cover the write model ------------------------------


def timelog_unread(stack: Stack) -> set[str]:
    policy = stack.client.app[POLICIES_KEY].engine.policies["timelog"]  # type: ignore[index]
    connector = build_connector(stack.settings.upstreams["timelog"])
    return set(policy.writable_fields) - set(connector.read_coverage) - {policy.id_field}


async def test_timelog_refuses_to_clear_fields_it_could_not_read(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/timelog/customers/3001", json={"Name": "Nordlicht GmbH"}, headers=EDITOR
    )
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "would_clear_unknown_fields"
    named = {e["field"] for e in body["errors"]}
    assert named == timelog_unread(stack)
    assert len(named) >= 20
    assert (await stack.stats("timelog")).get("PUT", 0) == 0


async def test_timelog_patch_that_supplies_the_unread_fields_is_forwarded(stack: Stack) -> None:
    stored = stack.store("timelog").get(3001)
    patch = {field: stored.get(field) for field in timelog_unread(stack)}
    patch = {k: v for k, v in patch.items() if v is not None}
    missing = timelog_unread(stack) - set(patch)
    # a field the upstream holds as null is cleared on purpose: say so explicitly
    patch.update({field: None for field in missing})
    patch["Name"] = "Nordlicht GmbH"
    # the unread fields count as changes (their value is unknown): a purpose that
    # covers every profile of the policy is needed
    resp = await stack.client.patch(
        "/v1/systems/timelog/customers/3001",
        json=patch,
        headers={**EDITOR, "X-Purpose": "contract"},
    )
    assert resp.status == 200, await resp.text()
    after = stack.store("timelog").get(3001)
    assert after["Name"] == "Nordlicht GmbH"
    for field, value in patch.items():
        if field != "Name" and value is not None:
            assert after[field] == value
    assert (await stack.stats("timelog")).get("PUT") == 1


# -- sedona: read, merge, validate the whole result, PUT ----------------------------------


async def test_sedona_nested_bill_contact_change_keeps_its_siblings(stack: Stack) -> None:
    before = stack.store("sedona").get(2001)
    resp = await stack.client.patch(
        "/v1/systems/sedona/customers/2001",
        json={"CustomerBillPrimary": {"Email": "billing@example.com"}},
        headers=EDITOR,
    )
    assert resp.status == 200, await resp.text()
    after = stack.store("sedona").get(2001)
    assert after["CustomerBillPrimary"]["Email"] == "billing@example.com"
    assert after["CustomerBillPrimary"]["City"] == before["CustomerBillPrimary"]["City"]
    assert after["CustomerName"] == before["CustomerName"]
    assert after["TermCode"] == before["TermCode"]


async def test_sedona_length_limit_is_a_validation_error(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/sedona/customers/2001", json={"CustomerName": "x" * 61}, headers=EDITOR
    )
    assert resp.status == 422
    body = await resp.json()
    assert {(e["field"], e["code"]) for e in body["errors"]} == {("CustomerName", "too_long")}
    assert (await stack.stats("sedona")).get("PUT", 0) == 0


async def test_sedona_clearing_a_required_field_is_refused(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/sedona/customers/2001", json={"TermCode": None}, headers=EDITOR
    )
    assert resp.status == 422
    body = await resp.json()
    assert ("TermCode", "required") in {(e["field"], e["code"]) for e in body["errors"]}


async def test_sedona_read_only_field_is_refused(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/sedona/customers/2001", json={"BalanceDue": 0}, headers=EDITOR
    )
    assert resp.status == 422
    body = await resp.json()
    assert ("BalanceDue", "read_only") in {(e["field"], e["code"]) for e in body["errors"]}


# -- keycom: forward the patch as it is ----------------------------------------------------


async def test_keycom_patch_is_forwarded_as_is(stack: Stack) -> None:
    before = stack.store("keycom").get(4001)
    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4001",
        json={"phone": "+358 40 1234567"},
        headers=EDITOR,
    )
    assert resp.status == 200, await resp.text()
    after = stack.store("keycom").get(4001)
    assert after["phone"] == "+358 40 1234567"
    assert after["modified"] != before["modified"]
    stats = await stack.stats("keycom")
    assert stats.get("PATCH") == 1 and stats.get("PUT", 0) == 0


async def test_keycom_restricted_record_only_a_privacy_officer_may_change(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4002", json={"email": "new@example.fi"}, headers=EDITOR
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "record_restricted"
    assert (await stack.stats("keycom")).get("PATCH", 0) == 0

    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4002", json={"email": "new@example.fi"}, headers=PRIVACY
    )
    assert resp.status == 200, await resp.text()
    assert stack.store("keycom").get(4002)["email"] == "new@example.fi"


async def test_keycom_protection_field_is_not_editable_by_an_editor(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4001", json={"restricted_type_id": 2}, headers=EDITOR
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "field_not_editable"
    assert (await stack.stats("keycom")).get("PATCH", 0) == 0


# -- masking per role -------------------------------------------------------------------------


async def read_as(stack: Stack, system: str, customer: str, headers: dict[str, str]) -> Any:
    resp = await stack.client.get(f"/v1/systems/{system}/customers/{customer}", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"].startswith('"')
    return await resp.json()


async def test_masking_per_role(stack: Stack) -> None:
    clear = stack.store("billbee").get(1002)["Email"]
    editor = (await read_as(stack, "billbee", "1002", EDITOR))["customer"]["Email"]
    auditor = (await read_as(stack, "billbee", "1002", AUDITOR))["customer"]["Email"]
    auditor_again = (await read_as(stack, "billbee", "1002", AUDITOR))["customer"]["Email"]
    privacy = (await read_as(stack, "billbee", "1002", PRIVACY))["customer"]["Email"]
    assert privacy == clear
    assert editor != clear and editor[0] == clear[0]  # partial: first letter kept
    assert auditor != clear and auditor == auditor_again  # pseudonym: stable, joinable
    assert clear.split("@")[0] not in auditor


async def test_restricted_record_is_masked_harder_for_an_editor(stack: Stack) -> None:
    clear = stack.store("keycom").get(4002)["name"]
    editor = (await read_as(stack, "keycom", "4002", EDITOR))["customer"]["name"]
    ordinary = (await read_as(stack, "keycom", "4001", EDITOR))["customer"]["name"]
    privacy = (await read_as(stack, "keycom", "4002", PRIVACY))["customer"]["name"]
    assert privacy == clear
    # restricted: redacted whole for an editor, not the partial mask of an ordinary record
    assert editor == REDACTED
    ordinary_clear = stack.store("keycom").get(4001)["name"]
    assert ordinary != ordinary_clear and ordinary[0] == ordinary_clear[0]


async def test_read_needs_a_reading_role(stack: Stack) -> None:
    resp = await stack.client.get(
        "/v1/systems/billbee/customers/1002",
        headers={"Authorization": "Bearer demo-admin", "X-Purpose": "customer_service"},
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "forbidden"


async def test_read_needs_a_known_purpose(stack: Stack) -> None:
    url = "/v1/systems/billbee/customers/1002"
    resp = await stack.client.get(url, headers={"Authorization": "Bearer demo-editor"})
    assert resp.status == 403
    assert (await resp.json())["code"] == "purpose_required"
    resp = await stack.client.get(url, headers={**EDITOR, "X-Purpose": "curiosity"})
    assert resp.status == 403
    assert (await resp.json())["code"] == "purpose_not_allowed"
    assert (await stack.stats("billbee")).get("GET", 0) == 0  # refused before any read


async def test_read_purpose_can_be_made_optional(
    aiohttp_client: Any, tmp_path: Any
) -> None:
    import dataclasses

    from tests.service.conftest import make_stack

    async for stack in make_stack(
        aiohttp_client, tmp_path,
        tweak=lambda s: dataclasses.replace(s, upstream_read_purpose_required=False),
    ):
        resp = await stack.client.get(
            "/v1/systems/billbee/customers/1002", headers={"Authorization": "Bearer demo-editor"}
        )
        assert resp.status == 200
