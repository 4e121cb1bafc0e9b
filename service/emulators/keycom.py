"""Keypro KeyCom: ``Token`` auth, partial PATCH, Django-REST-style errors, ``modified``."""

from __future__ import annotations

import datetime as dt
import re
from types import MappingProxyType
from typing import Any, Final

from aiohttp import web

from common.vocabulary import System
from service.emulators.fakedata import person, rng_for
from service.emulators.httputil import (
    BodyError,
    int_id,
    is_int,
    is_number,
    json_body,
    same_secret,
)
from service.emulators.keys import STORE_KEY, customer_reader, requested_customer
from service.emulators.spec import Record, SystemSpec

# field -> (kind, max length for strings); order and types as docs/vendors/UPSTREAMS.md's table
FIELDS: dict[str, tuple[str, int | None]] = {
    "address_id": ("int", None), "language_id": ("int", None),
    "restricted_type_id": ("restricted", None), "status_id": ("int", None),
    "type_id": ("int", None), "apartment_id": ("int", None), "cooperative_date": ("date", None),
    "cooperative_member": ("bool", None), "cooperative_reimbursement_date": ("date", None),
    "cooperative_sum": ("number", None), "country": ("str", 64), "email": ("email", 254),
    "name": ("name", 255), "name_extension": ("str", 255), "number": ("str", 32),
    "phone": ("str", 32), "modified": ("read_only", None), "id": ("read_only", None),
    "identification": ("str", 64), "invoicing_country": ("str", 64),
    "invoice_name": ("str", 255), "editable_by_customer": ("bool", None),
    "sms_disabled": ("bool", None), "note": ("str", 4000), "phone2": ("str", 32),
    "sms_numbers": ("sms", None), "personal_id": ("str", 32),
    "water_database_id": ("int", None),
}
#: the credentials this emulator accepts (the demo's, published in docs/upstreams.md)
CREDENTIALS: Final = MappingProxyType({"token": "0123456789abcdef0123456789abcdef01234567"})
RESTRICTED_TYPES = (1, 2)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_TOKEN = re.compile(r"Token ([0-9a-f]{40})")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_HINT = "Use one of these formats instead: YYYY-MM-DD."
NOT_PROVIDED = "Authentication credentials were not provided"


def error(status: int, message: str) -> web.Response:
    response = web.json_response({"details": message}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Token"
    return response


def _guard(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization")
    if header is None:
        return error(401, NOT_PROVIDED)
    match = _TOKEN.fullmatch(header)
    if match is None:
        return error(401, NOT_PROVIDED if not header.startswith("Token ") else "Invalid token.")
    if not same_secret(match.group(1), CREDENTIALS["token"]):
        return error(401, "Invalid token.")
    return None


get_customer = customer_reader(
    _guard, lambda _: error(404, "Not found."), lambda _, record: web.json_response(record)
)


async def list_customers(request: web.Request) -> web.Response:
    refused = _guard(request)
    if refused is not None:
        return refused
    offset = int_id(request.query.get("offset", "0"))
    limit = int_id(request.query.get("limit", str(DEFAULT_LIMIT)))
    if offset is None or limit is None or not 1 <= limit <= MAX_LIMIT:
        return web.json_response(
            {"details": f"offset must be >= 0 and limit between 1 and {MAX_LIMIT}"}, status=400)
    store = request.app[STORE_KEY]
    ids = store.ids()

    def link(at: int) -> str:
        return str(request.url.with_query({"offset": str(at), "limit": str(limit)}))

    return web.json_response({
        "Next": link(offset + limit) if offset + limit < len(ids) else None,
        "Prev": link(max(0, offset - limit)) if offset > 0 else None,
        "Results": [store.get(i) for i in ids[offset:offset + limit]],
    })


async def patch_customer(request: web.Request) -> web.Response:
    refused = _guard(request)
    if refused is not None:
        return refused
    customer_id, found = requested_customer(request)
    if customer_id is None or found is None:
        return error(404, "Not found.")
    try:
        body = await json_body(request)
    except BodyError as exc:
        return web.json_response({"details": f"JSON parse error - {exc}"}, status=400)
    if not isinstance(body, dict):
        return web.json_response(
            {"non_field_errors": ["Invalid data. Expected a dictionary."]}, status=400)
    problems = validate(body)
    if problems:
        return web.json_response(problems, status=400)
    # read the record only now, after the last await: no write can slip in between
    record = request.app[STORE_KEY].get(customer_id)
    if record is None:
        return error(404, "Not found.")
    for name, value in body.items():
        if name in FIELDS and FIELDS[name][0] != "read_only":
            record[name] = list(value) if isinstance(value, list) else value
    record["modified"] = next_modified(record.get("modified"))
    request.app[STORE_KEY].put(customer_id, record)
    return web.json_response(record)


def format_modified(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_modified(previous: str | None) -> str:
    """Now, in ISO 8601 with microseconds and ``Z``; always later than ``previous``."""
    now = dt.datetime.now(dt.UTC)
    if previous:
        try:
            before = dt.datetime.strptime(previous, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        except ValueError:
            before = None
        if before is not None and now <= before:
            now = before + dt.timedelta(microseconds=1)
    return format_modified(now)


def _field_problem(name: str, kind: str, max_len: int | None, value: Any) -> str | None:
    if value is None:
        nullable = kind not in ("bool", "restricted", "name", "sms")
        return None if nullable else "This field may not be null."
    if kind in ("int", "restricted"):
        if not is_int(value):
            return "A valid integer is required."
        if kind == "restricted" and value not in RESTRICTED_TYPES:
            return f'"{value}" is not a valid choice.'
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "Must be a valid boolean."
    if kind == "number":
        return None if is_number(value) else "A valid number is required."
    if kind == "date":
        ok = isinstance(value, str) and _DATE.fullmatch(value) and _valid_date(value)
        return None if ok else f"Date has wrong format. {_DATE_HINT}"
    if kind == "sms":
        if not isinstance(value, list):
            return "Expected a list of items."
        if len(value) > 2:
            return "Ensure this field has no more than 2 elements."
        if not all(isinstance(v, str) and 0 < len(v) <= 32 for v in value):
            return "Each item must be a non-empty string of at most 32 characters."
        return None
    if not isinstance(value, str):
        return "Not a valid string."
    if kind == "name" and not value.strip():
        return "This field may not be blank."
    if max_len is not None and len(value) > max_len:
        return f"Ensure this field has no more than {max_len} characters."
    if kind == "email" and value and not _EMAIL.fullmatch(value):
        return "Enter a valid email address."
    return None


def _valid_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def validate(body: dict[str, Any]) -> dict[str, list[str]]:
    """DRF-style errors: field -> messages. Unknown and read-only fields are ignored."""
    out: dict[str, list[str]] = {}
    for name, value in body.items():
        spec = FIELDS.get(name)
        if spec is None or spec[0] == "read_only":
            continue
        problem = _field_problem(name, spec[0], spec[1], value)
        if problem is not None:
            out[name] = [problem]
    return out


def _record(customer_id: int, **values: Any) -> Record:
    record: Record = dict.fromkeys(FIELDS)
    record.update({"cooperative_member": False, "editable_by_customer": False,
                   "sms_disabled": False, "sms_numbers": [], "restricted_type_id": 1,
                   "id": customer_id})
    record.update(values)
    return record


def seed() -> dict[int, Record]:
    ordinary = _record(
        4001, address_id=14001, language_id=1, status_id=1, type_id=1, apartment_id=None,
        cooperative_date="2012-05-02", cooperative_member=True,
        cooperative_reimbursement_date=None, cooperative_sum=250.0, country="FI",
        email="aino.virtanen@example.fi", name="Virtanen Aino", name_extension=None,
        number="K-4001", phone="+358 40 555 0101", modified="2026-01-15T08:30:00.000000Z",
        identification="4001-A", invoicing_country="FI", invoice_name="Aino Virtanen",
        editable_by_customer=True, note="Mittari kellarissa", phone2=None,
        sms_numbers=["+358 40 555 0101"], personal_id="010180-123X", water_database_id=1,
    )
    restricted = _record(
        4002, address_id=14002, language_id=1, restricted_type_id=2, status_id=1, type_id=1,
        cooperative_date="2016-09-12", cooperative_member=True, cooperative_sum=250.0,
        country="FI", email="turva.asiakas@example.fi", name="Mäkinen Elina",
        name_extension=None, number="K-4002", phone="+358 50 555 0102",
        modified="2026-02-03T12:00:00.000000Z", identification="4002-A",
        invoicing_country="FI", invoice_name="Elina Mäkinen", note=None,
        phone2="+358 9 555 0102", sms_numbers=["+358 50 555 0102", "+358 44 555 0102"],
        personal_id="120385-456Y", water_database_id=1,
    )
    return {4001: ordinary, 4002: restricted}


def generate(customer_id: int) -> Record:
    rng = rng_for("keycom", customer_id)
    who = person("fi", rng)
    born = dt.date(rng.randint(1940, 2004), rng.randint(1, 12), rng.randint(1, 28))
    century = "-" if born.year < 2000 else "A"
    member = rng.random() < 0.7
    modified = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        seconds=rng.randint(0, 300 * 86400), microseconds=rng.randint(0, 999_999))
    return _record(
        customer_id, address_id=customer_id + 10000, language_id=rng.choice((1, 1, 2)),
        restricted_type_id=2 if rng.random() < 0.02 else 1, status_id=rng.choice((1, 1, 2)),
        type_id=rng.choice((1, 1, 2)), apartment_id=rng.choice((None, rng.randint(1, 80))),
        cooperative_date=f"{rng.randint(1995, 2025)}-{rng.randint(1, 12):02d}-01"
        if member else None,
        cooperative_member=member, cooperative_sum=250.0 if member else None, country="FI",
        email=who.email, name=f"{who.last} {who.first}", number=f"K-{customer_id}",
        phone=who.mobile, modified=format_modified(modified),
        identification=f"{customer_id}-A", invoicing_country="FI", invoice_name=who.full_name,
        editable_by_customer=rng.random() < 0.5, sms_disabled=rng.random() < 0.1,
        phone2=who.phone if rng.random() < 0.3 else None, sms_numbers=[who.mobile],
        personal_id=f"{born:%d%m%y}{century}{rng.randint(2, 899):03d}"
        f"{'0123456789ABCDEFHJKLMNPRSTUVWXY'[rng.randint(0, 30)]}",
        water_database_id=1,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/customers/", list_customers)
    app.router.add_get("/customers/{id}/", get_customer)
    app.router.add_patch("/customers/{id}/", patch_customer)


SPEC = SystemSpec(name=System.KEYCOM, seed=seed, generate=generate, add_routes=add_routes,
                  error=error, credentials=CREDENTIALS)
