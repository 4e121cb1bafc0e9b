"""sedona emulator: Basic auth, the sample's shape, required fields, lengths, read-only."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from service.emulators import STORE_KEY
from service.emulators.sedona import NULL_DATE

from .conftest import SEDONA_AUTH, Client

# key order of the seed page's JSON sample
SAMPLE_KEYS = [
    "CustomerId", "CustomerNumber", "CustomerName", "StatusCode", "TypeCode",
    "CollectionStatusCode", "SalespersonCode", "TermCode", "TaxExemptNum", "BlanketPO",
    "BlanketPOExpire", "OldCustomerNumber", "LastStatementDate", "NoLateFees", "NoStatements",
    "NoCollections", "OkToIncreaseDate", "StatementBalance", "PrintSiteOnInvoices",
    "PrintStatements", "PrintCycleInvoices", "RollUpRecurring", "CustomerSince", "BranchCode",
    "CustomerGroupID", "GroupCode", "Group2Code", "CustomerName2", "MasterAccountCode",
    "CustomerRelationCode", "IsMaster", "MasterAccountBilling", "BalanceDue", "TotalActiveRMR",
    "TotalActiveRAR", "FullNameAndNumber", "CustomerBillPrimary",
]
BILL_KEYS = [
    "CustomerBillId", "CustomerId", "IsCommercial", "BillName", "Address1", "Address2",
    "Address3", "City", "State", "Zip", "County", "ZipExt", "CountryAbbrev", "Phone1", "Phone2",
    "Fax", "Email", "IsPrimary", "Inactive", "BranchCode", "EmailInvoices", "BusinessName2",
]
URL = "/api/customer/2001"


def _current(client: Client) -> dict[str, Any]:
    record = client.app[STORE_KEY].get(2001)
    assert record is not None
    return record


async def _put(client: Client, body: object) -> aiohttp.ClientResponse:
    return await client.put(URL, json=body, headers=SEDONA_AUTH)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": aiohttp.encode_basic_auth("demo", "wrong")},
     {"Authorization": "Bearer demo-sedona-password"}],
)
async def test_basic_auth_is_required(sedona: Client, headers: dict[str, str]) -> None:
    resp = await sedona.get(URL, headers=headers)
    assert resp.status == 401
    assert await resp.json() == {"Message": "Authorization has been denied for this request."}


async def test_get_has_the_fields_of_the_sample(sedona: Client) -> None:
    resp = await sedona.get(URL, headers=SEDONA_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert sorted(body) == sorted(SAMPLE_KEYS)
    assert sorted(body["CustomerBillPrimary"]) == sorted(BILL_KEYS)
    assert body["StatusCode"] == "AR"


async def test_generated_customers_have_the_same_fields(sedona: Client) -> None:
    resp = await sedona.get("/api/customer/100123", headers=SEDONA_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert sorted(body) == sorted(SAMPLE_KEYS)
    assert ", " in body["CustomerName"]


async def test_unknown_customer_is_404(sedona: Client) -> None:
    resp = await sedona.get("/api/customer/99", headers=SEDONA_AUTH)
    assert resp.status == 404
    assert "Message" in await resp.json()


async def test_put_of_the_read_record_round_trips(sedona: Client) -> None:
    before = _current(sedona)
    resp = await _put(sedona, before | {"CustomerName": "Carter, Emma"})
    assert resp.status == 200
    expected = before | {"CustomerName": "Carter, Emma",
                         "FullNameAndNumber": "Carter, Emma - S-2001"}
    assert _current(sedona) == expected
    assert await resp.json() == expected


async def test_put_replaces_the_whole_object(sedona: Client) -> None:
    before = _current(sedona)
    resp = await _put(sedona, {"CustomerName": "Carter, Emily", "TypeCode": "RES",
                               "TermCode": "NET30"})
    assert resp.status == 200
    after = _current(sedona)
    assert after["CustomerNumber"] is None and before["CustomerNumber"] is not None
    assert after["PrintStatements"] is False and before["PrintStatements"] is True
    assert after["BlanketPOExpire"] == NULL_DATE
    assert after["OkToIncreaseDate"] == NULL_DATE
    assert after["StatusCode"] == "AR"
    assert after["SalespersonCode"] == "N/A"
    assert after["GroupCode"] is None and after["CustomerGroupID"] is None
    # an omitted CustomerBillPrimary is kept
    assert after["CustomerBillPrimary"] == before["CustomerBillPrimary"]


async def test_read_only_fields_are_ignored(sedona: Client) -> None:
    before = _current(sedona)
    body = before | {
        "CustomerId": 777, "LastStatementDate": "01/01/2000", "StatementBalance": 999.0,
        "BalanceDue": 999.0, "TotalActiveRMR": 999.0, "TotalActiveRAR": 999.0,
        "FullNameAndNumber": "Forged", "CustomerGroupID": 99,
    }
    resp = await _put(sedona, body)
    assert resp.status == 200
    assert _current(sedona) == before
    assert sedona.app[STORE_KEY].get(777) is None


async def test_group_code_sets_customer_group_id(sedona: Client) -> None:
    resp = await _put(sedona, _current(sedona) | {"GroupCode": "COM"})
    assert resp.status == 200
    assert _current(sedona)["CustomerGroupID"] == 2


@pytest.mark.parametrize("missing", ["CustomerName", "TypeCode", "TermCode"])
@pytest.mark.parametrize("how", ["omitted", "null", "blank"])
async def test_required_fields(sedona: Client, missing: str, how: str) -> None:
    before = _current(sedona)
    body = dict(before)
    if how == "omitted":
        del body[missing]
    else:
        body[missing] = None if how == "null" else "  "
    resp = await _put(sedona, body)
    assert resp.status == 400
    payload = await resp.json()
    assert payload["Message"] == "The request is invalid."
    assert payload["ModelState"] == {f"customer.{missing}": [f"The {missing} field is required."]}
    assert _current(sedona) == before


@pytest.mark.parametrize(
    ("field", "limit"),
    [("CustomerNumber", 15), ("CustomerName", 60), ("TaxExemptNum", 20), ("BlanketPO", 20),
     ("OldCustomerNumber", 15), ("CustomerName2", 60), ("TypeCode", 25), ("TermCode", 25),
     ("BlanketPOExpire", 25), ("CustomerSince", 25), ("MasterAccountCode", 25)],
)
async def test_length_limits(sedona: Client, field: str, limit: int) -> None:
    at_limit = await _put(sedona, _current(sedona) | {field: "A" * limit})
    assert at_limit.status == 200
    before = _current(sedona)
    resp = await _put(sedona, before | {field: "A" * (limit + 1)})
    assert resp.status == 400
    payload = await resp.json()
    assert payload["ModelState"] == {
        f"customer.{field}": [
            f"The field {field} must be a string with a maximum length of {limit}."
        ]
    }
    assert _current(sedona) == before


@pytest.mark.parametrize(
    ("patch", "key"),
    [({"StatusCode": "ACTIVE"}, "customer.StatusCode"),
     ({"GroupCode": "NOPE"}, "customer.GroupCode"),
     ({"Group2Code": "NOPE"}, "customer.Group2Code"),
     ({"NoLateFees": "yes"}, "customer.NoLateFees"),
     ({"CustomerBillPrimary": {"Email": 5}}, "customer.CustomerBillPrimary.Email"),
     ({"CustomerBillPrimary": "x"}, "customer.CustomerBillPrimary")],
)
async def test_invalid_values_are_400_naming_the_field(
    sedona: Client, patch: dict[str, Any], key: str
) -> None:
    before = _current(sedona)
    resp = await _put(sedona, before | patch)
    assert resp.status == 400
    assert list((await resp.json())["ModelState"]) == [key]
    assert _current(sedona) == before


@pytest.mark.parametrize("status_code", ["AR", "ANR", "CANC"])
async def test_status_codes_accepted(sedona: Client, status_code: str) -> None:
    resp = await _put(sedona, _current(sedona) | {"StatusCode": status_code})
    assert resp.status == 200
    assert _current(sedona)["StatusCode"] == status_code


async def test_bill_primary_is_replaced_as_a_whole(sedona: Client) -> None:
    before = _current(sedona)
    resp = await _put(sedona, before | {"CustomerBillPrimary": {"BillName": "Emily C."}})
    assert resp.status == 200
    bill = _current(sedona)["CustomerBillPrimary"]
    assert sorted(bill) == sorted(BILL_KEYS)
    assert bill["BillName"] == "Emily C."
    assert bill["Email"] is None and bill["IsPrimary"] is False
    assert bill["CustomerBillId"] == before["CustomerBillPrimary"]["CustomerBillId"]
    assert bill["CustomerId"] == 2001


async def test_body_that_is_not_an_object_is_400(sedona: Client) -> None:
    resp = await sedona.put(URL, data=b"nope", headers=SEDONA_AUTH)
    assert resp.status == 400
    assert "customer" in (await resp.json())["ModelState"]
