"""SedonaOffice: HTTP Basic (assumed), whole-object PUT with required fields, length
limits, read-only computed fields, GroupCode -> CustomerGroupID, the 12/30/1899 null date."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any, Final

from aiohttp import web

from common.vocabulary import System
from service.emulators.fakedata import person, rng_for
from service.emulators.httputil import BodyError, basic_ok, int_id, json_body
from service.emulators.keys import STORE_KEY, customer_reader
from service.emulators.spec import Record, SystemSpec

#: the credentials this emulator accepts (the demo's, published in docs/upstreams.md)
CREDENTIALS: Final = MappingProxyType({"username": "demo", "password": "demo-sedona-password"})
NULL_DATE = "12/30/1899"
STATUS_CODES = ("AR", "ANR", "CANC")
#: the fixed AR_Customer_Group table: GroupCode -> CustomerGroupID
CUSTOMER_GROUPS: dict[str, int] = {"RES": 1, "COM": 2, "GOV": 3, "VIP": 4}

# field -> (kind, max length or None); order as in the seed page's JSON sample
FIELDS: dict[str, tuple[str, int | None]] = {
    "CustomerNumber": ("str", 15), "CustomerName": ("str", 60), "StatusCode": ("str", 25),
    "TypeCode": ("str", 25), "CollectionStatusCode": ("str", 25),
    "SalespersonCode": ("str", 25), "TermCode": ("str", 25), "TaxExemptNum": ("str", 20),
    "BlanketPO": ("str", 20), "BlanketPOExpire": ("str", 25),
    "OldCustomerNumber": ("str", 15), "NoLateFees": ("bool", None),
    "NoStatements": ("bool", None), "NoCollections": ("bool", None),
    "OkToIncreaseDate": ("str", 25), "PrintSiteOnInvoices": ("bool", None),
    "PrintStatements": ("bool", None), "PrintCycleInvoices": ("bool", None),
    "RollUpRecurring": ("bool", None), "CustomerSince": ("str", 25), "BranchCode": ("str", 25),
    "GroupCode": ("str", 25), "Group2Code": ("str", 25), "CustomerName2": ("str", 60),
    "MasterAccountCode": ("str", 25), "CustomerRelationCode": ("str", 25),
    "IsMaster": ("bool", None), "MasterAccountBilling": ("bool", None),
}
REQUIRED = ("CustomerName", "TypeCode", "TermCode")
#: computed or set by the server; a PUT's values for these are ignored
READ_ONLY = (
    "CustomerId", "LastStatementDate", "StatementBalance", "BalanceDue", "TotalActiveRMR",
    "TotalActiveRAR", "FullNameAndNumber", "CustomerGroupID",
)
#: what an omitted field becomes (the page's "defaults to ... if not supplied")
DEFAULTS: dict[str, Any] = {
    "StatusCode": "AR", "CollectionStatusCode": "OK", "SalespersonCode": "N/A",
    "BlanketPOExpire": NULL_DATE, "OkToIncreaseDate": NULL_DATE, "BranchCode": "MAIN",
    "MasterAccountCode": "N/A", "CustomerRelationCode": "N/A",
}
BILL_FIELDS: dict[str, str] = {
    "IsCommercial": "bool", "BillName": "str", "Address1": "str", "Address2": "str",
    "Address3": "str", "City": "str", "State": "str", "Zip": "str", "County": "str",
    "ZipExt": "str", "CountryAbbrev": "str", "Phone1": "str", "Phone2": "str", "Fax": "str",
    "Email": "str", "IsPrimary": "bool", "Inactive": "bool", "BranchCode": "str",
    "EmailInvoices": "bool", "BusinessName2": "str",
}
_KIND_NAMES = {"str": "System.String", "bool": "System.Boolean"}


def error(status: int, message: str) -> web.Response:
    return web.json_response({"Message": message}, status=status)


def invalid(model_state: dict[str, list[str]]) -> web.Response:
    """ASP.NET Web API's model-state answer."""
    return web.json_response(
        {"Message": "The request is invalid.", "ModelState": model_state}, status=400)


def _authorised(request: web.Request) -> bool:
    creds = CREDENTIALS
    return basic_ok(request, creds["username"], creds["password"])


def _guard(request: web.Request) -> web.Response | None:
    if not _authorised(request):
        return error(401, "Authorization has been denied for this request.")
    return None


get_customer = customer_reader(
    _guard, lambda _: error(404, "Customer not found."), lambda _, record: web.json_response(record)
)


async def put_customer(request: web.Request) -> web.Response:
    if not _authorised(request):
        return error(401, "Authorization has been denied for this request.")
    customer_id = int_id(request.match_info["id"])
    store = request.app[STORE_KEY]
    if customer_id is None or customer_id not in store:
        return error(404, "Customer not found.")
    try:
        body = await json_body(request)
    except BodyError:
        return invalid({"customer": ["The request body is not a valid Customer."]})
    if not isinstance(body, dict):
        return invalid({"customer": ["The request body is not a valid Customer."]})
    problems = validate(body)
    if problems:
        return invalid(problems)
    # read the record only now, after the last await: no write can slip in between
    existing = store.get(customer_id)
    if existing is None:
        return error(404, "Customer not found.")
    record = replace_whole(customer_id, existing, body)
    store.put(customer_id, record)
    return web.json_response(record)


def _check(value: Any, kind: str, max_len: int | None, key: str, name: str,
           out: dict[str, list[str]]) -> None:
    if value is None:
        return
    if (kind == "str" and not isinstance(value, str)) or (kind == "bool" and not isinstance(
            value, bool)):
        out.setdefault(key, []).append(f"Error converting value to type '{_KIND_NAMES[kind]}'.")
    elif max_len is not None and len(value) > max_len:
        out.setdefault(key, []).append(
            f"The field {name} must be a string with a maximum length of {max_len}.")


def validate(body: dict[str, Any]) -> dict[str, list[str]]:
    """ModelState: ``customer.<Field>`` -> messages (field names and limits, never values)."""
    out: dict[str, list[str]] = {}
    for name in REQUIRED:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            out.setdefault(f"customer.{name}", []).append(f"The {name} field is required.")
    for name, (kind, max_len) in FIELDS.items():
        _check(body.get(name), kind, max_len, f"customer.{name}", name, out)
    status = body.get("StatusCode")
    if isinstance(status, str) and status not in STATUS_CODES:
        out.setdefault("customer.StatusCode", []).append(
            "The StatusCode must be one of AR, ANR, CANC.")
    for name in ("GroupCode", "Group2Code"):
        code = body.get(name)
        if isinstance(code, str) and code and code not in CUSTOMER_GROUPS:
            out.setdefault(f"customer.{name}", []).append(f"Invalid {name}.")
    bill = body.get("CustomerBillPrimary")
    if bill is not None and not isinstance(bill, dict):
        out.setdefault("customer.CustomerBillPrimary", []).append(
            "Error converting value to type 'SedonaServices.Models.CustomerBill'.")
    elif isinstance(bill, dict):
        for name, kind in BILL_FIELDS.items():
            _check(bill.get(name), kind, None, f"customer.CustomerBillPrimary.{name}", name, out)
    return out


def _full_name(record: Record) -> str:
    return f"{record.get('CustomerName') or ''} - {record.get('CustomerNumber') or ''}"


def replace_whole(customer_id: int, existing: Record, body: dict[str, Any]) -> Record:
    """Whole-object replacement. Omitted fields take the page's default (or null/false);
    read-only fields keep the stored value; a missing ``CustomerBillPrimary`` is kept."""
    record: Record = {"CustomerId": customer_id}
    for name, (kind, _) in FIELDS.items():
        value = body.get(name)
        if value is None or (value == "" and name in DEFAULTS):
            value = DEFAULTS.get(name, False if kind == "bool" else None)
        record[name] = value
    if record["CustomerSince"] is None:
        record["CustomerSince"] = dt.date.today().strftime("%m/%d/%Y")
    for name in READ_ONLY[1:]:
        record[name] = existing.get(name)
    group = record.get("GroupCode")
    record["CustomerGroupID"] = CUSTOMER_GROUPS.get(group) if group else None
    record["FullNameAndNumber"] = _full_name(record)
    bill = body.get("CustomerBillPrimary")
    old_bill = existing.get("CustomerBillPrimary")
    if isinstance(bill, dict):
        new_bill: Record = {
            "CustomerBillId": old_bill["CustomerBillId"] if old_bill else customer_id * 10 + 1,
            "CustomerId": customer_id,
        }
        for name, kind in BILL_FIELDS.items():
            value = bill.get(name)
            new_bill[name] = (False if kind == "bool" else None) if value is None else value
        record["CustomerBillPrimary"] = new_bill
    else:
        record["CustomerBillPrimary"] = old_bill
    return _ordered(record)


def _ordered(record: Record) -> Record:
    order = ["CustomerId", *FIELDS, *READ_ONLY[1:], "CustomerBillPrimary"]
    return {k: record.get(k) for k in order}


def _bill(customer_id: int, name: str, street: str, city: str, state: str, zip_code: str,
          phone: str, email: str) -> Record:
    return {
        "CustomerBillId": customer_id * 10 + 1, "CustomerId": customer_id,
        "IsCommercial": False, "BillName": name, "Address1": street, "Address2": None,
        "Address3": None, "City": city, "State": state, "Zip": zip_code, "County": None,
        "ZipExt": None, "CountryAbbrev": "USA", "Phone1": phone, "Phone2": None, "Fax": None,
        "Email": email, "IsPrimary": True, "Inactive": False, "BranchCode": "MAIN",
        "EmailInvoices": True, "BusinessName2": None,
    }


def _base(customer_id: int, name: str, number: str, since: str) -> Record:
    record: Record = dict.fromkeys(FIELDS)
    record.update({name_: False for name_, (kind, _) in FIELDS.items() if kind == "bool"})
    record.update(DEFAULTS)
    record.update({
        "CustomerId": customer_id, "CustomerNumber": number, "CustomerName": name,
        "TypeCode": "RES", "TermCode": "NET30", "CustomerSince": since, "GroupCode": "RES",
        "PrintStatements": True, "PrintCycleInvoices": True,
        "LastStatementDate": "10/31/2026", "StatementBalance": 0.0, "CustomerGroupID": 1,
        "BalanceDue": 0.0, "TotalActiveRMR": 0.0, "TotalActiveRAR": 0.0,
    })
    record["FullNameAndNumber"] = _full_name(record)
    return record


def seed() -> dict[int, Record]:
    record = _base(2001, "Carter, Emily", "S-2001", "06/15/2018")
    record.update({"StatementBalance": 89.97, "BalanceDue": 29.99, "TotalActiveRMR": 29.99})
    record["CustomerBillPrimary"] = _bill(
        2001, "Emily Carter", "42 Lakeview Ct", "Madison", "WI", "53703", "(608) 555-0142",
        "emily.carter@example.com")
    return {2001: _ordered(record)}


def generate(customer_id: int) -> Record:
    rng = rng_for("sedona", customer_id)
    who = person("us", rng)
    since = f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2005, 2025)}"
    record = _base(customer_id, f"{who.last}, {who.first}", str(customer_id), since)
    rmr = round(rng.choice((0.0, 19.99, 29.99, 39.99, 49.99)), 2)
    record.update({"TotalActiveRMR": rmr, "StatementBalance": round(rmr * rng.randint(0, 3), 2),
                   "BalanceDue": round(rmr * rng.randint(0, 2), 2),
                   "StatusCode": rng.choice(("AR", "AR", "AR", "ANR", "CANC"))})
    record["CustomerBillPrimary"] = _bill(
        customer_id, who.full_name, who.street, who.city, who.state, who.zip_code, who.phone,
        who.email)
    return _ordered(record)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/customer/{id}", get_customer)
    app.router.add_put("/api/customer/{id}", put_customer)


SPEC = SystemSpec(name=System.SEDONA, seed=seed, generate=generate, add_routes=add_routes,
                  error=error, credentials=CREDENTIALS)
