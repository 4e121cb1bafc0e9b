"""TimeLog: bearer token, an 8-field read model, a whole-object PUT with the id in the body."""

from __future__ import annotations

import uuid
from types import MappingProxyType
from typing import Any, Final

from aiohttp import web

from common.vocabulary import System
from service.emulators.fakedata import person, rng_for
from service.emulators.httputil import BodyError, is_int, json_body, same_secret
from service.emulators.keys import STORE_KEY, customer_reader
from service.emulators.spec import Record, SystemSpec

API_VERSION = "v1"
#: the credentials this emulator accepts (the demo's, published in docs/upstreams.md)
CREDENTIALS: Final = MappingProxyType({"token": "demo-timelog-token"})
#: the one account it serves, as the gateway's ``options`` name it
OPTIONS: Final = MappingProxyType({"account": "demo", "api_version": API_VERSION})

#: the 33 writable fields of the seed page and their kinds
WRITE_FIELDS: dict[str, str] = {
    "Address": "str", "Address2": "str", "Address3": "str", "City": "str",
    "CountryID": "int", "CreditorID": "str", "CurrencyID": "int", "CustomerID": "int",
    "CustomerNo": "str", "CustomerSince": "str", "CustomerStatusID": "int", "Email": "str",
    "Fax": "str", "IndustryID": "int", "InvoicingAddress": "str", "InvoicingAddress2": "str",
    "InvoicingAddress3": "str", "InvoicingAddressCity": "str",
    "InvoicingAddressCountryID": "int", "InvoicingAddressState": "str",
    "InvoicingAddressZipCode": "str", "InvoicingName": "str", "Name": "str",
    "NickName": "str", "OrganizationNo": "str", "Phone": "str", "PrimaryKAMID": "int",
    "SecondaryKAMID": "int", "State": "str", "UseInvoicingAddress": "bool", "VatNo": "str",
    "Website": "str", "ZipCode": "str",
}
#: kept by the store beside the write model; shown in the read model, never written
READ_ONLY_FIELDS = ("ID", "DefaultMileageDistance")
_DEFAULTS = {"str": None, "int": 0, "bool": False}


def error(status: int, message: str, details: list[dict[str, Any]] | None = None,
          *, url: str | None = None) -> web.Response:
    """TimeLog's error body: Code, Details[{Message, ErrorCode}], DeveloperNote, ..."""
    body = {
        "Code": status,
        "Details": details if details is not None else [{"Message": message, "ErrorCode": status}],
        "DeveloperNote": None,
        "Message": message,
        "Parameters": None,
        "Url": url,
    }
    return web.json_response(body, status=status)


def _model_state(problems: list[str], url: str) -> web.Response:
    return error(
        400, "Invalid model state",
        [{"Message": p, "ErrorCode": "InvalidModelState"} for p in problems], url=url,
    )


def _not_found(message: str, url: str) -> web.Response:
    return error(500, message, [{"Message": "Customer not found",
                                 "ErrorCode": "CustomerNotFound"}], url=url)


def read_model(record: Record) -> dict[str, Any]:
    return {
        "CustomerID": record["CustomerID"],
        "ID": record["ID"],
        "Name": record["Name"],
        "No": record["CustomerNo"],
        "DefaultMileageDistance": record["DefaultMileageDistance"],
        "CustomerStatusID": record["CustomerStatusID"],
        "VATNo": record["VatNo"],
        "OrganizationNo": record["OrganizationNo"],
    }


def _envelope(record: Record, account: str) -> dict[str, Any]:
    base = f"/{account}/api/{API_VERSION}/customer"
    return {
        "Properties": read_model(record),
        "Links": [{"Rel": "self", "Href": f"{base}/{record['CustomerID']}", "Method": "GET"}],
        "Actions": [{"Name": "update-customer", "Href": f"{base}/update", "Method": "PUT"}],
    }


def _authorised(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (
        scheme == "Bearer"
        and same_secret(token.strip(), CREDENTIALS["token"])
        and request.match_info["account"] == OPTIONS["account"]
    )


def _guard(request: web.Request) -> web.Response | None:
    if request.match_info["version"] != API_VERSION:
        return error(404, "Unknown API version", url=request.path)
    if not _authorised(request):
        return error(401, "Invalid authentication token", url=request.path)
    return None


get_customer = customer_reader(
    _guard,
    lambda request: _not_found("Customer could not be found", request.path),
    lambda request, record: web.json_response(_envelope(record, request.match_info["account"])),
)


async def update_customer(request: web.Request) -> web.Response:
    refused = _guard(request)
    if refused is not None:
        return refused
    try:
        body = await json_body(request)
    except BodyError:
        return _model_state(["The request body is not a valid customer object."], request.path)
    if not isinstance(body, dict):
        return _model_state(["The request body is not a valid customer object."], request.path)
    problems = validate(body)
    if problems:
        return _model_state(problems, request.path)
    store = request.app[STORE_KEY]
    customer_id: int = body["CustomerID"]
    existing = store.get(customer_id)
    if existing is None:
        return _not_found("Customer could not be updated", request.path)
    record = replace_whole(existing, body)
    store.put(customer_id, record)
    return web.json_response(_envelope(record, request.match_info["account"]))


def validate(body: dict[str, Any]) -> list[str]:
    """Model-state problems of a PUT body (field names only, never values)."""
    problems = []
    customer_id = body.get("CustomerID")
    if not isinstance(customer_id, int) or isinstance(customer_id, bool) or customer_id <= 0:
        problems.append("The CustomerID field is required.")
    name = body.get("Name")
    if not isinstance(name, str) or not name.strip():
        problems.append("The Name field is required.")
    for field, kind in WRITE_FIELDS.items():
        value = body.get(field)
        if value is None or field in ("CustomerID", "Name"):
            continue
        ok = (
            isinstance(value, str) if kind == "str"
            else is_int(value) if kind == "int"
            else isinstance(value, bool)
        )
        if not ok:
            problems.append(f"The value is not valid for {field}.")
    return problems


def replace_whole(existing: Record, body: dict[str, Any]) -> Record:
    """The whole-object replacement: an omitted (or null) field gets its empty value."""
    record: Record = {}
    for field, kind in WRITE_FIELDS.items():
        value = body.get(field)
        record[field] = _DEFAULTS[kind] if value is None else value
    for field in READ_ONLY_FIELDS:
        record[field] = existing[field]
    return record


def seed() -> dict[int, Record]:
    record: Record = dict.fromkeys(WRITE_FIELDS)
    record.update({
        "CustomerID": 3001, "ID": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "DefaultMileageDistance": 12,
        "Name": "Nordhavn Arkitekter ApS", "NickName": "Nordhavn", "CustomerNo": "C-3001",
        "CustomerStatusID": 1, "CustomerSince": "2019-04-01", "Email": "kontakt@example.dk",
        "Phone": "+45 33 12 34 56", "Fax": None, "Website": "https://nordhavn.example.dk",
        "Address": "Sundkaj 9", "Address2": None, "Address3": None, "City": "København Ø",
        "ZipCode": "2150", "State": None, "CountryID": 45, "CurrencyID": 1,
        "IndustryID": 7, "OrganizationNo": "DK-31415926", "VatNo": "DK31415926",
        "CreditorID": "K-3001", "PrimaryKAMID": 11, "SecondaryKAMID": 0,
        "UseInvoicingAddress": True, "InvoicingName": "Mette Jensen",
        "InvoicingAddress": "Postboks 123", "InvoicingAddress2": None,
        "InvoicingAddress3": None, "InvoicingAddressCity": "København Ø",
        "InvoicingAddressState": None, "InvoicingAddressZipCode": "2150",
        "InvoicingAddressCountryID": 45,
    })
    return {3001: record}


def generate(customer_id: int) -> Record:
    rng = rng_for("timelog", customer_id)
    who = person("dk", rng)
    separate = rng.random() < 0.3
    org = f"{rng.randint(10000000, 99999999)}"
    record: Record = {
        "CustomerID": customer_id, "ID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "DefaultMileageDistance": rng.randint(0, 80),
        "Name": who.company, "NickName": who.last, "CustomerNo": f"C-{customer_id}",
        "CustomerStatusID": rng.choice((1, 1, 1, 2)),
        "CustomerSince": f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-01",
        "Email": who.email, "Phone": who.phone, "Fax": None,
        "Website": None, "Address": who.street, "Address2": None, "Address3": None,
        "City": who.city, "ZipCode": who.zip_code, "State": None, "CountryID": 45,
        "CurrencyID": 1, "IndustryID": rng.randint(1, 20), "OrganizationNo": org,
        "VatNo": f"DK{org}", "CreditorID": None, "PrimaryKAMID": rng.randint(1, 30),
        "SecondaryKAMID": 0, "UseInvoicingAddress": separate,
        "InvoicingName": who.full_name if separate else None,
        "InvoicingAddress": who.street if separate else None, "InvoicingAddress2": None,
        "InvoicingAddress3": None, "InvoicingAddressCity": who.city if separate else None,
        "InvoicingAddressState": None,
        "InvoicingAddressZipCode": who.zip_code if separate else None,
        "InvoicingAddressCountryID": 45 if separate else 0,
    }
    return {k: record[k] for k in (*WRITE_FIELDS, *READ_ONLY_FIELDS)}


def add_routes(app: web.Application) -> None:
    app.router.add_put("/{account}/api/{version}/customer/update", update_customer)
    app.router.add_get("/{account}/api/{version}/customer/{id}", get_customer)


SPEC = SystemSpec(
    name=System.TIMELOG, seed=seed, generate=generate, add_routes=add_routes,
    error=lambda status, message: error(status, message),
    credentials=CREDENTIALS, options=OPTIONS,
)
