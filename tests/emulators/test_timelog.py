"""timelog emulator: bearer auth, the 8-field read model, whole-object PUT, error shapes."""

from __future__ import annotations

from typing import Any

import pytest

from service.emulators import STORE_KEY
from service.emulators.timelog import WRITE_FIELDS

from .conftest import TIMELOG_AUTH, Client

BASE = "/demo/api/v1/customer"
READ_MODEL = {
    "CustomerID": int, "ID": str, "Name": str, "No": str, "DefaultMileageDistance": int,
    "CustomerStatusID": int, "VATNo": str, "OrganizationNo": str,
}
ERROR_KEYS = {"Code", "Details", "DeveloperNote", "Message", "Parameters", "Url"}


def _write_model(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k in WRITE_FIELDS}


async def test_get_answers_only_the_read_model_in_the_envelope(timelog: Client) -> None:
    resp = await timelog.get(f"{BASE}/3001", headers=TIMELOG_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"Properties", "Links", "Actions"}
    props = body["Properties"]
    assert set(props) == set(READ_MODEL)
    for name, kind in READ_MODEL.items():
        assert isinstance(props[name], kind), name
    stored = timelog.app[STORE_KEY].get(3001)
    assert stored is not None
    assert props["No"] == stored["CustomerNo"]
    assert props["VATNo"] == stored["VatNo"]
    assert isinstance(body["Links"], list) and isinstance(body["Actions"], list)


async def test_store_keeps_all_33_writable_fields(timelog: Client) -> None:
    stored = timelog.app[STORE_KEY].get(3001)
    assert stored is not None
    assert len(WRITE_FIELDS) == 33
    assert set(WRITE_FIELDS) <= set(stored)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Token demo-timelog-token"},
        {"Authorization": "demo-timelog-token"},
    ],
)
async def test_bad_or_missing_token_is_401(timelog: Client, headers: dict[str, str]) -> None:
    resp = await timelog.get(f"{BASE}/3001", headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert set(body) == ERROR_KEYS
    assert body["Message"] == "Invalid authentication token"


async def test_other_account_is_401(timelog: Client) -> None:
    resp = await timelog.get("/other/api/v1/customer/3001", headers=TIMELOG_AUTH)
    assert resp.status == 401


async def test_put_replaces_the_whole_object(timelog: Client) -> None:
    store = timelog.app[STORE_KEY]
    before = store.get(3001)
    assert before is not None
    resp = await timelog.put(
        f"{BASE}/update", json={"CustomerID": 3001, "Name": "Renamed ApS"}, headers=TIMELOG_AUTH
    )
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"Properties", "Links", "Actions"}
    assert body["Properties"]["Name"] == "Renamed ApS"
    assert body["Properties"]["No"] is None
    after = store.get(3001)
    assert after is not None
    assert after["Email"] is None and before["Email"] is not None
    assert after["CountryID"] == 0 and before["CountryID"] != 0
    assert after["UseInvoicingAddress"] is False and before["UseInvoicingAddress"] is True
    # read-only fields survive
    assert after["ID"] == before["ID"]
    assert after["DefaultMileageDistance"] == before["DefaultMileageDistance"]


async def test_put_of_the_full_write_model_changes_only_what_differs(timelog: Client) -> None:
    store = timelog.app[STORE_KEY]
    before = store.get(3001)
    assert before is not None
    body = _write_model(before) | {"Email": "new@example.dk"}
    resp = await timelog.put(f"{BASE}/update", json=body, headers=TIMELOG_AUTH)
    assert resp.status == 200
    assert store.get(3001) == before | {"Email": "new@example.dk"}


async def test_read_names_are_ignored_on_put_so_the_write_field_is_cleared(
    timelog: Client,
) -> None:
    store = timelog.app[STORE_KEY]
    before = store.get(3001)
    assert before is not None
    body = _write_model(before)
    body["No"] = body.pop("CustomerNo")
    body["VATNo"] = body.pop("VatNo")
    resp = await timelog.put(f"{BASE}/update", json=body, headers=TIMELOG_AUTH)
    assert resp.status == 200
    after = store.get(3001)
    assert after is not None
    assert after["CustomerNo"] is None
    assert after["VatNo"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"Name": "No id ApS"},
        {"CustomerID": 3001},
        {"CustomerID": 3001, "Name": ""},
        {"CustomerID": "3001", "Name": "String id ApS"},
        {"CustomerID": 3001, "Name": "Typed ApS", "CountryID": "DK"},
        {"CustomerID": 3001, "Name": "Typed ApS", "UseInvoicingAddress": "yes"},
        [],
    ],
)
async def test_invalid_model_state_is_400(timelog: Client, body: object) -> None:
    store = timelog.app[STORE_KEY]
    before = store.get(3001)
    resp = await timelog.put(f"{BASE}/update", json=body, headers=TIMELOG_AUTH)
    assert resp.status == 400
    payload = await resp.json()
    assert set(payload) == ERROR_KEYS
    assert payload["Message"] == "Invalid model state"
    assert payload["Details"]
    assert store.get(3001) == before


async def test_non_json_body_is_400(timelog: Client) -> None:
    resp = await timelog.put(f"{BASE}/update", data=b"{not json", headers=TIMELOG_AUTH)
    assert resp.status == 400


async def test_unknown_id_is_500_with_the_error_shape(timelog: Client) -> None:
    resp = await timelog.get(f"{BASE}/999999", headers=TIMELOG_AUTH)
    assert resp.status == 500
    body = await resp.json()
    assert set(body) == ERROR_KEYS
    assert body["Details"][0]["ErrorCode"] == "CustomerNotFound"
    assert set(body["Details"][0]) == {"Message", "ErrorCode"}
    resp = await timelog.put(
        f"{BASE}/update", json={"CustomerID": 999999, "Name": "Ghost"}, headers=TIMELOG_AUTH
    )
    assert resp.status == 500
    assert (await resp.json())["Details"][0]["ErrorCode"] == "CustomerNotFound"
    assert timelog.app[STORE_KEY].get(999999) is None


@pytest.mark.parametrize("customer_id", [100000, 104242, 109999])
async def test_generated_customers_are_readable(timelog: Client, customer_id: int) -> None:
    resp = await timelog.get(f"{BASE}/{customer_id}", headers=TIMELOG_AUTH)
    assert resp.status == 200
    assert (await resp.json())["Properties"]["CustomerID"] == customer_id


async def test_unknown_version_is_404(timelog: Client) -> None:
    resp = await timelog.get("/demo/api/v9/customer/3001", headers=TIMELOG_AUTH)
    assert resp.status == 404
    assert set(await resp.json()) == ERROR_KEYS
