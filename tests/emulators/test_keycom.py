"""keycom emulator: Token auth, partial PATCH, DRF errors, modified, paging."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest

from service.emulators import STORE_KEY
from service.emulators.keycom import CREDENTIALS

from .conftest import KEYCOM_AUTH, Client

TABLE: dict[str, tuple[type, ...]] = {
    "address_id": (int,), "language_id": (int,), "restricted_type_id": (int,),
    "status_id": (int,), "type_id": (int,), "apartment_id": (int, type(None)),
    "cooperative_date": (str, type(None)), "cooperative_member": (bool,),
    "cooperative_reimbursement_date": (str, type(None)),
    "cooperative_sum": (float, int, type(None)), "country": (str,), "email": (str,),
    "name": (str,), "name_extension": (str, type(None)), "number": (str,), "phone": (str,),
    "modified": (str,), "id": (int,), "identification": (str,), "invoicing_country": (str,),
    "invoice_name": (str,), "editable_by_customer": (bool,), "sms_disabled": (bool,),
    "note": (str, type(None)), "phone2": (str, type(None)), "sms_numbers": (list,),
    "personal_id": (str,), "water_database_id": (int,),
}
MODIFIED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
TOKEN = CREDENTIALS["token"]


def _record(client: Client, customer_id: int) -> dict[str, Any]:
    record = client.app[STORE_KEY].get(customer_id)
    assert record is not None
    return record


async def _patch(client: Client, customer_id: int, body: object) -> aiohttp.ClientResponse:
    return await client.patch(f"/customers/{customer_id}/", json=body, headers=KEYCOM_AUTH)


@pytest.mark.parametrize(
    ("headers", "details"),
    [
        ({}, "Authentication credentials were not provided"),
        ({"Authorization": f"Bearer {TOKEN}"}, "Authentication credentials were not provided"),
        ({"Authorization": TOKEN}, "Authentication credentials were not provided"),
        ({"Authorization": f"token {TOKEN}"}, "Authentication credentials were not provided"),
        ({"Authorization": "Token " + "f" * 40}, "Invalid token."),
        ({"Authorization": f"Token {TOKEN[:-1]}"}, "Invalid token."),
        ({"Authorization": f"Token  {TOKEN}"}, "Invalid token."),
    ],
)
async def test_token_auth(keycom: Client, headers: dict[str, str], details: str) -> None:
    resp = await keycom.get("/customers/4001/", headers=headers)
    assert resp.status == 401
    assert await resp.json() == {"details": details}


@pytest.mark.parametrize("customer_id", [4001, 4002, 100000, 109999])
async def test_fields_and_types_as_the_table(keycom: Client, customer_id: int) -> None:
    resp = await keycom.get(f"/customers/{customer_id}/", headers=KEYCOM_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert list(body) == list(TABLE)
    for name, kinds in TABLE.items():
        assert isinstance(body[name], kinds), name
    assert body["id"] == customer_id
    assert MODIFIED.fullmatch(body["modified"])
    assert len(body["sms_numbers"]) <= 2


async def test_ordinary_and_restricted_demo_records(keycom: Client) -> None:
    assert _record(keycom, 4001)["restricted_type_id"] == 1
    assert _record(keycom, 4002)["restricted_type_id"] == 2


async def test_unknown_customer_is_404(keycom: Client) -> None:
    resp = await keycom.get("/customers/5/", headers=KEYCOM_AUTH)
    assert resp.status == 404
    assert await resp.json() == {"details": "Not found."}
    resp = await _patch(keycom, 5, {"note": "x"})
    assert resp.status == 404
    assert keycom.app[STORE_KEY].get(5) is None


async def test_patch_changes_only_the_given_fields_and_modified(keycom: Client) -> None:
    before = _record(keycom, 4002)
    resp = await _patch(keycom, 4002, {"email": "new@example.fi", "sms_numbers": []})
    assert resp.status == 200
    after = _record(keycom, 4002)
    assert await resp.json() == after
    assert after["modified"] != before["modified"]
    assert after["modified"] > before["modified"]
    assert MODIFIED.fullmatch(after["modified"])
    assert after == before | {"email": "new@example.fi", "sms_numbers": [],
                              "modified": after["modified"]}


async def test_modified_changes_on_every_write(keycom: Client) -> None:
    seen = [_record(keycom, 4001)["modified"]]
    for _ in range(3):
        resp = await _patch(keycom, 4001, {"note": "same"})
        assert resp.status == 200
        seen.append((await resp.json())["modified"])
    assert seen == sorted(seen)
    assert len(set(seen)) == 4


async def test_read_only_id_and_modified_are_ignored(keycom: Client) -> None:
    before = _record(keycom, 4001)
    resp = await _patch(
        keycom, 4001, {"id": 9, "modified": "2000-01-01T00:00:00.000000Z", "unknown": 1}
    )
    assert resp.status == 200
    after = _record(keycom, 4001)
    assert after["id"] == 4001
    assert after["modified"] > before["modified"]
    assert "unknown" not in after
    assert keycom.app[STORE_KEY].get(9) is None


@pytest.mark.parametrize(
    ("body", "failing"),
    [
        ({"email": "not-an-email"}, {"email"}),
        ({"restricted_type_id": 3}, {"restricted_type_id"}),
        ({"restricted_type_id": None}, {"restricted_type_id"}),
        ({"name": ""}, {"name"}),
        ({"name": None}, {"name"}),
        ({"address_id": "12"}, {"address_id"}),
        ({"cooperative_member": None}, {"cooperative_member"}),
        ({"cooperative_sum": "250"}, {"cooperative_sum"}),
        ({"cooperative_date": "12.05.2020"}, {"cooperative_date"}),
        ({"cooperative_date": "2020-02-30"}, {"cooperative_date"}),
        ({"sms_numbers": ["1", "2", "3"]}, {"sms_numbers"}),
        ({"sms_numbers": "+358"}, {"sms_numbers"}),
        ({"phone": "1" * 33}, {"phone"}),
        ({"note": 5, "email": "bad", "phone": "+358 1"}, {"note", "email"}),
    ],
)
async def test_invalid_fields_are_400_naming_them(
    keycom: Client, body: dict[str, Any], failing: set[str]
) -> None:
    before = _record(keycom, 4001)
    resp = await _patch(keycom, 4001, body)
    assert resp.status == 400
    payload = await resp.json()
    assert set(payload) == failing
    assert all(isinstance(v, list) and v for v in payload.values())
    assert _record(keycom, 4001) == before


async def test_email_message_is_drf_style(keycom: Client) -> None:
    resp = await _patch(keycom, 4001, {"email": "bad"})
    assert await resp.json() == {"email": ["Enter a valid email address."]}


async def test_nulls_allowed_where_nullable(keycom: Client) -> None:
    resp = await _patch(keycom, 4001, {"email": None, "phone2": None, "apartment_id": None})
    assert resp.status == 200
    assert _record(keycom, 4001)["email"] is None


async def test_bad_bodies(keycom: Client) -> None:
    resp = await keycom.patch("/customers/4001/", data=b"{", headers=KEYCOM_AUTH)
    assert resp.status == 400
    assert "details" in await resp.json()
    resp = await _patch(keycom, 4001, ["name"])
    assert resp.status == 400
    assert "non_field_errors" in await resp.json()


async def test_list_with_offset_and_limit(keycom: Client) -> None:
    resp = await keycom.get("/customers/?offset=0&limit=2", headers=KEYCOM_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"Next", "Prev", "Results"}
    assert [r["id"] for r in body["Results"]] == [4001, 4002]
    assert body["Prev"] is None
    nxt = await keycom.get(body["Next"].split(str(keycom.port), 1)[1], headers=KEYCOM_AUTH)
    page2 = await nxt.json()
    assert [r["id"] for r in page2["Results"]] == [100000, 100001]
    assert page2["Prev"] is not None
    resp = await keycom.get("/customers/?offset=10000&limit=5", headers=KEYCOM_AUTH)
    last = await resp.json()
    assert [r["id"] for r in last["Results"]] == [109998, 109999]
    assert last["Next"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "offset=a"])
async def test_bad_paging_is_400(keycom: Client, query: str) -> None:
    resp = await keycom.get(f"/customers/?{query}", headers=KEYCOM_AUTH)
    assert resp.status == 400
    assert "details" in await resp.json()


async def test_path_without_trailing_slash_is_404(keycom: Client) -> None:
    resp = await keycom.get("/customers/4001", headers=KEYCOM_AUTH)
    assert resp.status == 404
    assert await resp.json() == {"details": "Not Found"}


async def test_concurrent_patches_of_different_fields_all_land(keycom: Client) -> None:
    patches = [
        {"note": "n"}, {"phone2": "+358 9 1"}, {"name_extension": "jr"}, {"status_id": 2},
        {"type_id": 2}, {"language_id": 2}, {"sms_disabled": True}, {"apartment_id": 9},
    ]
    responses = await asyncio.gather(*(_patch(keycom, 4001, p) for p in patches))
    assert [r.status for r in responses] == [200] * len(patches)
    final = _record(keycom, 4001)
    for patch in patches:
        assert final | patch == final
    stamps = [(await r.json())["modified"] for r in responses]
    assert len(set(stamps)) == len(patches)
