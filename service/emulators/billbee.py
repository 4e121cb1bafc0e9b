"""Billbee: API key + Basic, an envelope on every answer, whole-object PUT, archived lock,
2 requests/second per (key, user) and endpoint."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Final

from aiohttp import web

from common.vocabulary import System
from service.emulators.fakedata import person, rng_for
from service.emulators.httputil import (
    BodyError,
    basic_credentials,
    int_id,
    is_int,
    json_body,
    same_secret,
)
from service.emulators.keys import LIMITER_KEY, STORE_KEY, customer_reader
from service.emulators.ratelimit import RateLimiter
from service.emulators.spec import Record, SystemSpec

#: the credentials this emulator accepts (the demo's, published in docs/upstreams.md)
CREDENTIALS: Final = MappingProxyType(
    {"api_key": "demo-billbee-key", "username": "demo", "password": "demo-billbee-password"}
)
#: requests per second per (API key, user) and endpoint, as the real Billbee
LIMIT_PER_SECOND: Final = 2

# ErrorCode values of the envelope (Billbee's own numbering is not published).
NO_ERROR = 0
AUTH_FAILED = 1
NOT_FOUND = 2
INVALID_INPUT = 3
CUSTOMER_ARCHIVED = 4
RATE_LIMITED = 5
OTHER_ERROR = 99
ARCHIVED_MESSAGE = "Customer is archived; further modification is disabled"

#: TypeId -> TypeName of a contact object (TypeName is read-only, derived on every write)
TYPE_NAMES: dict[int, str] = {1: "E-Mail", 2: "Telefon", 3: "Fax", 4: "Mobil"}

SCALARS: dict[str, str] = {
    "Number": "int", "Name": "str", "Email": "str", "Tel1": "str", "Tel2": "str",
    "VatId": "str", "LanguageId": "int", "PriceGroupId": "int", "Type": "int",
}
CONTACTS = (
    "DefaultMailAddress", "DefaultCommercialMailAddress", "DefaultStatusUpdatesMailAddress",
    "DefaultPhone1", "DefaultPhone2", "DefaultFax",
)
#: never set through PUT (kept from the stored record)
PROTECTED = ("ArchivedAt", "RestoredAt")


def envelope(data: Any, *, code: int = NO_ERROR, message: str | None = None,
             description: str | None = None, status: int = 200,
             extra: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "ErrorCode": code, "ErrorMessage": message, "ErrorDescription": description,
        "Data": data,
    }
    if extra:
        body.update(extra)
    return web.json_response(body, status=status)


def error(status: int, message: str) -> web.Response:
    code = {400: INVALID_INPUT, 401: AUTH_FAILED, 404: NOT_FOUND, 429: RATE_LIMITED}.get(
        status, OTHER_ERROR)
    return envelope(None, code=code, message=message, status=status)


def _guard(request: web.Request) -> web.Response | None:
    """401 without both credentials; 429 over the rate limit."""
    creds = CREDENTIALS
    key = request.headers.get("X-Billbee-Api-Key", "")
    basic = basic_credentials(request)
    if not (
        key and same_secret(key, creds["api_key"]) and basic is not None
        and same_secret(basic[0], creds["username"])
        and same_secret(basic[1], creds["password"])
    ):
        return error(401, "Unauthorized: API key and Basic credentials are required")
    limiter = request.app[LIMITER_KEY]
    route = request.match_info.route.resource
    endpoint = f"{request.method} {route.canonical if route is not None else request.path}"
    wait = limiter.check((key, basic[0], endpoint))
    if wait is None:
        return None
    response = error(429, "Rate limit exceeded: 2 requests per second per endpoint")
    if limiter.retry_after:
        response.headers["Retry-After"] = RateLimiter.header_value(wait)
    return response


get_customer = customer_reader(
    _guard, lambda _: error(404, "Customer not found"), lambda _, record: envelope(record)
)


async def list_customers(request: web.Request) -> web.Response:
    refused = _guard(request)
    if refused is not None:
        return refused
    page = int_id(request.query.get("page", "1"))
    size = int_id(request.query.get("pageSize", "50"))
    if page is None or page < 1 or size is None or not 1 <= size <= 250:
        return error(400, "page must be >= 1 and pageSize between 1 and 250")
    store = request.app[STORE_KEY]
    ids = store.ids()
    chunk = ids[(page - 1) * size: page * size]
    paging = {"Page": page, "TotalPages": math.ceil(len(ids) / size), "TotalRows": len(ids),
              "PageSize": size}
    return envelope([store.get(i) for i in chunk], extra={"Paging": paging})


async def put_customer(request: web.Request) -> web.Response:
    refused = _guard(request)
    if refused is not None:
        return refused
    customer_id = int_id(request.match_info["id"])
    store = request.app[STORE_KEY]
    if customer_id is None or customer_id not in store:
        return error(404, "Customer not found")
    try:
        body = await json_body(request)
    except BodyError as exc:
        return error(400, f"Invalid request body: {exc}")
    if not isinstance(body, dict):
        return error(400, "Invalid request body: expected a customer object")
    # read the record only now, after the last await: no write can slip in between
    existing = store.get(customer_id)
    if existing is None:
        return error(404, "Customer not found")
    if existing.get("ArchivedAt"):
        return envelope(None, code=CUSTOMER_ARCHIVED, message=ARCHIVED_MESSAGE, status=400)
    problems = validate(body)
    if problems:
        return envelope(None, code=INVALID_INPUT, message="Invalid customer",
                        description="; ".join(problems), status=400)
    record = replace_whole(customer_id, existing, body)
    store.put(customer_id, record)
    return envelope(record)


def validate(body: dict[str, Any]) -> list[str]:
    """Problems naming fields (never values)."""
    problems = []
    for field, kind in SCALARS.items():
        value = body.get(field)
        if value is not None and not (is_int(value) if kind == "int" else isinstance(value, str)):
            problems.append(f"{field} must be {'an integer' if kind == 'int' else 'a string'}")
    if body.get("Type") not in (None, 0, 1):
        problems.append("Type must be 0 (end customer) or 1 (business)")
    for field in CONTACTS:
        problems.extend(_contact_problems(body.get(field), field))
    meta = body.get("MetaData")
    if meta is not None:
        if not isinstance(meta, list):
            problems.append("MetaData must be an array")
        else:
            for i, item in enumerate(meta):
                problems.extend(_contact_problems(item, f"MetaData[{i}]", nullable=False))
    return problems


def _contact_problems(value: Any, where: str, *, nullable: bool = True) -> list[str]:
    if value is None and nullable:
        return []
    if not isinstance(value, dict):
        return [f"{where} must be an object"]
    out = []
    for key in ("Id", "TypeId"):
        if value.get(key) is not None and not is_int(value[key]):
            out.append(f"{where}.{key} must be an integer")
    for key in ("SubType", "Value", "TypeName"):
        if value.get(key) is not None and not isinstance(value[key], str):
            out.append(f"{where}.{key} must be a string")
    return out


def _contact(value: dict[str, Any] | None, previous: Any, fallback_id: int) -> Any:
    if value is None:
        return None
    contact_id = value.get("Id")
    if contact_id is None:
        contact_id = previous.get("Id") if isinstance(previous, dict) and previous.get(
            "Id") is not None else fallback_id
    type_id = value.get("TypeId")
    return {
        "Id": contact_id, "TypeId": type_id, "TypeName": TYPE_NAMES.get(type_id or 0),
        "SubType": value.get("SubType"), "Value": value.get("Value"),
    }


def replace_whole(customer_id: int, existing: Record, body: dict[str, Any]) -> Record:
    """Whole-object replacement: omitted fields become null (MetaData: []); the id comes
    from the path; ArchivedAt, RestoredAt and every TypeName are never taken from the body."""
    record: Record = {"Id": customer_id}
    for field in SCALARS:
        record[field] = body.get(field)
    for field in PROTECTED:
        record[field] = existing.get(field)
    for slot, field in enumerate(CONTACTS):
        record[field] = _contact(body.get(field), existing.get(field), customer_id * 100 + slot)
    old_meta = existing.get("MetaData") or []
    record["MetaData"] = [
        _contact(item, old_meta[i] if i < len(old_meta) else None, customer_id * 100 + 10 + i)
        for i, item in enumerate(body.get("MetaData") or [])
    ]
    return record


def _c(contact_id: int, type_id: int, value: str | None, sub: str | None = None) -> Record:
    return {"Id": contact_id, "TypeId": type_id, "TypeName": TYPE_NAMES[type_id],
            "SubType": sub, "Value": value}


def _record(customer_id: int, number: int, name: str, email: str, tel1: str,
            tel2: str | None, customer_type: int, vat: str | None) -> Record:
    base = customer_id * 100
    return {
        "Id": customer_id, "Number": number, "Name": name, "Email": email, "Tel1": tel1,
        "Tel2": tel2, "VatId": vat, "LanguageId": 1, "PriceGroupId": 1, "Type": customer_type,
        "ArchivedAt": None, "RestoredAt": None,
        "DefaultMailAddress": _c(base, 1, email),
        "DefaultCommercialMailAddress": _c(base + 1, 1, email) if customer_type else None,
        "DefaultStatusUpdatesMailAddress": _c(base + 2, 1, email),
        "DefaultPhone1": _c(base + 3, 2, tel1),
        "DefaultPhone2": _c(base + 4, 2, tel2) if tel2 else None,
        "DefaultFax": None,
        "MetaData": [],
    }


def seed() -> dict[int, Record]:
    archived = _record(1001, 51001, "Greta Baumann", "greta.baumann@example.de",
                       "+49 30 5550101", None, 0, None)
    archived["ArchivedAt"] = "2025-03-14T09:30:00Z"
    active = _record(1002, 51002, "Jonas Keller", "jonas.keller@example.de", "+49 40 5550102",
                     "+49 151 5550102", 1, "DE123456789")
    active["MetaData"] = [_c(100210, 1, "buchhaltung@example.de", "Buchhaltung")]
    return {1001: archived, 1002: active}


def generate(customer_id: int) -> Record:
    rng = rng_for("billbee", customer_id)
    who = person("de", rng)
    business = rng.random() < 0.3
    return _record(
        customer_id, customer_id - 50000, who.company if business else who.full_name,
        who.email, who.phone, who.mobile if rng.random() < 0.5 else None, int(business),
        f"DE{rng.randint(100000000, 999999999)}" if business else None,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/customers", list_customers)
    app.router.add_get("/api/v1/customers/{id}", get_customer)
    app.router.add_put("/api/v1/customers/{id}", put_customer)


SPEC = SystemSpec(name=System.BILLBEE, seed=seed, generate=generate, add_routes=add_routes,
                  error=error, credentials=CREDENTIALS, rate_limit_per_second=LIMIT_PER_SECOND)
