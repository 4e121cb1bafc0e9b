"""billbee emulator: double auth, envelope, whole-object PUT, archived lock, rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from service.emulators import LIMITER_KEY, STORE_KEY, create_emulator
from service.emulators.billbee import ARCHIVED_MESSAGE, CREDENTIALS, CUSTOMER_ARCHIVED, RATE_LIMITED
from service.emulators.ratelimit import RateLimiter

from .conftest import BILLBEE_AUTH, Client, ClientFactory

ENVELOPE = {"ErrorCode", "ErrorMessage", "ErrorDescription", "Data"}
CUSTOMER_KEYS = {
    "Id", "Number", "Name", "Email", "Tel1", "Tel2", "VatId", "LanguageId", "PriceGroupId",
    "Type", "ArchivedAt", "RestoredAt", "DefaultMailAddress", "DefaultCommercialMailAddress",
    "DefaultStatusUpdatesMailAddress", "DefaultPhone1", "DefaultPhone2", "DefaultFax",
    "MetaData",
}
KEY = CREDENTIALS["api_key"]
BASIC = aiohttp.encode_basic_auth(
    CREDENTIALS["username"], CREDENTIALS["password"]
)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Billbee-Api-Key": KEY},
        {"Authorization": BASIC},
        {"X-Billbee-Api-Key": "wrong", "Authorization": BASIC},
        {"X-Billbee-Api-Key": KEY,
         "Authorization": aiohttp.encode_basic_auth("demo", "wrong-password")},
        {"X-Billbee-Api-Key": KEY, "Authorization": "Basic !!!notbase64"},
    ],
)
async def test_both_api_key_and_basic_are_required(
    billbee: Client, headers: dict[str, str]
) -> None:
    resp = await billbee.get("/api/v1/customers/1002", headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert set(body) == ENVELOPE
    assert body["Data"] is None and body["ErrorCode"] != 0


async def test_get_answers_the_customer_in_the_envelope(billbee: Client) -> None:
    resp = await billbee.get("/api/v1/customers/1002", headers=BILLBEE_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == ENVELOPE
    assert body["ErrorCode"] == 0
    assert set(body["Data"]) == CUSTOMER_KEYS
    assert body["Data"]["Id"] == 1002
    assert body["Data"]["ArchivedAt"] is None


async def test_demo_customer_1001_is_archived(billbee: Client) -> None:
    resp = await billbee.get("/api/v1/customers/1001", headers=BILLBEE_AUTH)
    assert (await resp.json())["Data"]["ArchivedAt"]


async def test_unknown_customer_is_404_in_the_envelope(billbee: Client) -> None:
    resp = await billbee.get("/api/v1/customers/424242", headers=BILLBEE_AUTH)
    assert resp.status == 404
    assert set(await resp.json()) == ENVELOPE


async def test_put_replaces_the_whole_object(billbee: Client) -> None:
    store = billbee.app[STORE_KEY]
    before = store.get(1002)
    assert before is not None and before["Email"] and before["MetaData"]
    resp = await billbee.put(
        "/api/v1/customers/1002", json={"Name": "Nur Name"}, headers=BILLBEE_AUTH
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["ErrorCode"] == 0
    after = store.get(1002)
    assert after == body["Data"]
    assert after is not None
    assert after["Name"] == "Nur Name"
    for cleared in ("Email", "Tel1", "Number", "DefaultMailAddress", "DefaultPhone1"):
        assert after[cleared] is None, cleared
    assert after["MetaData"] == []
    assert after["Id"] == 1002


async def test_put_of_the_read_record_round_trips(billbee: Client) -> None:
    store = billbee.app[STORE_KEY]
    before = store.get(1002)
    assert before is not None
    changed = before | {"Email": "neu@example.de"}
    resp = await billbee.put("/api/v1/customers/1002", json=changed, headers=BILLBEE_AUTH)
    assert resp.status == 200
    assert store.get(1002) == changed


async def test_archived_at_restored_at_and_type_name_cannot_be_set(billbee: Client) -> None:
    store = billbee.app[STORE_KEY]
    before = store.get(1002)
    assert before is not None
    body = before | {
        "ArchivedAt": "2026-01-01T00:00:00Z",
        "RestoredAt": "2026-01-02T00:00:00Z",
        "DefaultPhone1": {"Id": 7, "TypeId": 2, "TypeName": "Brieftaube", "Value": "+49 1"},
        "DefaultFax": {"TypeId": 3, "TypeName": "Wrong", "Value": "+49 2"},
    }
    resp = await billbee.put("/api/v1/customers/1002", json=body, headers=BILLBEE_AUTH)
    assert resp.status == 200
    after = store.get(1002)
    assert after is not None
    assert after["ArchivedAt"] is None
    assert after["RestoredAt"] is None
    assert after["DefaultPhone1"]["TypeName"] == "Telefon"
    assert after["DefaultFax"]["TypeName"] == "Fax"
    assert isinstance(after["DefaultFax"]["Id"], int)


async def test_put_to_an_archived_customer_is_refused(billbee: Client) -> None:
    store = billbee.app[STORE_KEY]
    before = store.get(1001)
    assert before is not None
    resp = await billbee.put(
        "/api/v1/customers/1001", json=before | {"Name": "Changed"}, headers=BILLBEE_AUTH
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["ErrorCode"] == CUSTOMER_ARCHIVED
    assert body["ErrorMessage"] == ARCHIVED_MESSAGE
    assert store.get(1001) == before


@pytest.mark.parametrize(
    "body",
    [{"Type": 5}, {"Number": "abc"}, {"Email": 12}, {"DefaultPhone1": "x"},
     {"MetaData": {"Value": "x"}}, {"MetaData": [{"TypeId": "one"}]}, [1, 2]],
)
async def test_bad_types_are_400(billbee: Client, body: object) -> None:
    before = billbee.app[STORE_KEY].get(1002)
    resp = await billbee.put("/api/v1/customers/1002", json=body, headers=BILLBEE_AUTH)
    assert resp.status == 400
    assert set(await resp.json()) == ENVELOPE
    assert billbee.app[STORE_KEY].get(1002) == before


async def test_list_pages_with_paging(billbee: Client) -> None:
    resp = await billbee.get("/api/v1/customers?page=1&pageSize=2", headers=BILLBEE_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert [c["Id"] for c in body["Data"]] == [1001, 1002]
    assert body["Paging"] == {"Page": 1, "TotalPages": 5001, "TotalRows": 10002, "PageSize": 2}
    resp = await billbee.get("/api/v1/customers?page=41&pageSize=250", headers=BILLBEE_AUTH)
    body = await resp.json()
    assert [c["Id"] for c in body["Data"]] == [109998, 109999]
    assert body["Paging"]["TotalPages"] == 41


@pytest.mark.parametrize("query", ["pageSize=251", "pageSize=0", "page=0", "page=x"])
async def test_bad_paging_is_400(billbee: Client, query: str) -> None:
    resp = await billbee.get(f"/api/v1/customers?{query}", headers=BILLBEE_AUTH)
    assert resp.status == 400


def _frozen_billbee(*, rate_limit: bool = True, retry_after: bool = True) -> web.Application:
    """Billbee whose rate limiter sees time stand still: the limit is hit however slowly
    the machine answers."""
    app = create_emulator("billbee")
    app[LIMITER_KEY] = RateLimiter(enabled=rate_limit, retry_after=retry_after,
                                   clock=lambda: 1000.0)
    return app


async def _third_request_status(
    client: Client, method: Callable[..., Awaitable[aiohttp.ClientResponse]]
) -> aiohttp.ClientResponse:
    responses = [await method("/api/v1/customers/1002", headers=BILLBEE_AUTH) for _ in range(3)]
    assert [r.status for r in responses[:2]] == [200, 200]
    return responses[2]


async def test_rate_limit_answers_429_with_retry_after(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(_frozen_billbee())
    third = await _third_request_status(client, client.get)
    assert third.status == 429
    assert (await third.json())["ErrorCode"] == RATE_LIMITED
    assert int(third.headers["Retry-After"]) >= 1


async def test_rate_limit_without_retry_after(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(_frozen_billbee(retry_after=False))
    third = await _third_request_status(client, client.get)
    assert third.status == 429
    assert "Retry-After" not in third.headers


async def test_rate_limit_is_per_endpoint(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(_frozen_billbee())
    for _ in range(2):
        assert (await client.get("/api/v1/customers/1002", headers=BILLBEE_AUTH)).status == 200
    resp = await client.get("/api/v1/customers?page=1&pageSize=1", headers=BILLBEE_AUTH)
    assert resp.status == 200
    record = client.app[STORE_KEY].get(1002)
    resp = await client.put("/api/v1/customers/1002", json=record, headers=BILLBEE_AUTH)
    assert resp.status == 200
    resp = await client.get("/api/v1/customers/1002", headers=BILLBEE_AUTH)
    assert resp.status == 429


async def test_rate_limit_can_be_switched_off(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_emulator("billbee", rate_limit=False))
    for _ in range(6):
        assert (await client.get("/api/v1/customers/1002", headers=BILLBEE_AUTH)).status == 200


async def test_rate_limit_switched_through_the_settings_endpoint(
    aiohttp_client: ClientFactory,
) -> None:
    client = await aiohttp_client(_frozen_billbee(rate_limit=False))
    resp = await client.post("/_emulator/settings", json={"rate_limit": True, "retry_after": False})
    assert resp.status == 200
    assert await resp.json() == {"rate_limit": True, "retry_after": False}
    assert client.app[LIMITER_KEY].enabled
    third = await _third_request_status(client, client.get)
    assert third.status == 429
    assert "Retry-After" not in third.headers
    resp = await client.post("/_emulator/settings", json={"rate_limit": "yes"})
    assert resp.status == 400


def test_rate_limiter_window_slides() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.check("k") is None
    now[0] += 0.4
    assert limiter.check("k") is None
    now[0] += 0.1
    wait = limiter.check("k")
    assert wait == pytest.approx(0.5)
    assert limiter.check("other") is None
    now[0] += 0.5
    assert limiter.check("k") is None
    assert RateLimiter.header_value(0.2) == "1"
    assert RateLimiter.header_value(1.2) == "2"
