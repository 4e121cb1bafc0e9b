"""TimeLog: whole-object PUT to ``/{account}/api/v{n}/customer/update``; an 8-field GET.

The read model names two fields differently from the write model (``No`` is written
``CustomerNo``, ``VATNo`` is written ``VatNo``); the connector speaks write names only.
The read model shows 6 of the 33 writable fields: ``read_coverage`` says which, and the
gateway refuses a write that would clear the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from common.vocabulary import System
from service.config_types import Credentials, Name, Options, SecretText
from service.errors import CustomerNotFound, FieldProblem, GatewayError, UpstreamError
from service.upstreams.answers import Answer
from service.upstreams.base import parse_customer_id
from service.upstreams.problems import field_problems, problems_for
from service.upstreams.transport import HttpConnector

DEFAULT_API_VERSION: Final = "v1"
#: read name -> write name
READ_TO_WRITE: Final[Mapping[str, str]] = {"No": "CustomerNo", "VATNo": "VatNo"}
WRITE_TO_READ: Final[Mapping[str, str]] = {v: k for k, v in READ_TO_WRITE.items()}
#: in the read model, not in the write model
READ_ONLY: Final = frozenset({"ID", "DefaultMileageDistance"})
#: the whole write model (seed page), for reference and for the policy's tests
WRITE_FIELDS: Final = frozenset(
    {
        "Address", "Address2", "Address3", "City", "CountryID", "CreditorID", "CurrencyID",
        "CustomerID", "CustomerNo", "CustomerSince", "CustomerStatusID", "Email", "Fax",
        "IndustryID", "InvoicingAddress", "InvoicingAddress2", "InvoicingAddress3",
        "InvoicingAddressCity", "InvoicingAddressCountryID", "InvoicingAddressState",
        "InvoicingAddressZipCode", "InvoicingName", "Name", "NickName", "OrganizationNo",
        "Phone", "PrimaryKAMID", "SecondaryKAMID", "State", "UseInvoicingAddress", "VatNo",
        "Website", "ZipCode",
    }
)


_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_MODEL_STATE_NAME = re.compile(rf"\bThe ({_PATH}) field\b|\bnot valid for ({_PATH})")


def to_write_names(record: Mapping[str, Any]) -> dict[str, Any]:
    return {READ_TO_WRITE.get(k, k): v for k, v in record.items()}


def _rename_problem_field(name: str) -> str:
    head, dot, rest = name.partition(".")
    return READ_TO_WRITE.get(head, head) + dot + rest


class TimelogCredentials(Credentials):
    """A bearer token."""

    token: SecretText


class TimelogOptions(Options):
    """Paths start ``/{account}/api/{api_version}/``."""

    account: Name
    api_version: Name = DEFAULT_API_VERSION


class TimelogConnector(HttpConnector):
    system = System.TIMELOG
    mode = "put"
    read_coverage = frozenset(
        {"CustomerID", "Name", "CustomerNo", "CustomerStatusID", "VatNo", "OrganizationNo"}
    )
    required_credentials = TimelogCredentials.names()

    @property
    def known_fields(self) -> frozenset[str]:
        return WRITE_FIELDS | READ_ONLY

    def _auth(self) -> dict[str, str]:
        token = TimelogCredentials.of(self.settings.credentials).token
        return {"Authorization": f"Bearer {token.reveal()}"}

    def _check_options(self) -> None:
        self._prefix()

    def _prefix(self) -> str:
        account = self.settings.options.get("account", "")
        version = self.settings.options.get("api_version", DEFAULT_API_VERSION)
        if not version.startswith("v"):
            version = "v" + version
        if _ACCOUNT.fullmatch(account) is None or not version[1:].isdigit():
            raise ValueError(
                "timelog: option 'account' (letters, digits, '-', '_', '.') and option "
                "'api_version' (e.g. v1) are required"
            )
        return f"{account}/api/{version}"

    def _problems(self, answer: Answer) -> list[FieldProblem]:
        # ASP.NET model-state messages name the field inside the text ("The Name field
        # is required.", "The value 'x' is not valid for Phone."): take the name only.
        names: list[object] = []
        body = answer.body
        if isinstance(body, Mapping) and isinstance(body.get("Details"), list):
            for item in body["Details"]:
                message = item.get("Message") if isinstance(item, Mapping) else None
                if isinstance(message, str):
                    found = _MODEL_STATE_NAME.finditer(message)
                    names.extend(m.group(1) or m.group(2) for m in found)
        known = self.known_fields
        return problems_for(names, _rename_problem_field, known) or field_problems(
            body, _rename_problem_field, known
        )

    def _special_error(self, answer: Answer) -> GatewayError | None:
        # TimeLog answers an unknown customer with a 500 whose details say so.
        body = answer.body
        if answer.status == 500 and isinstance(body, Mapping):
            details = body.get("Details")
            if isinstance(details, list) and any(
                isinstance(d, Mapping) and d.get("ErrorCode") == "CustomerNotFound"
                for d in details
            ):
                return CustomerNotFound(f"{self.system}: customer not found upstream")
        return None

    def _record(self, answer: Answer) -> dict[str, Any]:
        body = answer.body
        if isinstance(body, Mapping) and isinstance(body.get("Properties"), Mapping):
            body = body["Properties"]
        if not isinstance(body, Mapping) or "CustomerID" not in body:
            raise self._malformed(answer.status)
        return to_write_names(body)

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        answer = await self._call(
            "GET", f"{self._prefix()}/customer/{cid}", route="customer/{id}"
        )
        return self._record(answer)

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        payload = {
            k: v
            for k, v in body.items()
            if k not in READ_ONLY and k not in WRITE_TO_READ.values()
        }
        payload["CustomerID"] = cid
        answer = await self._call(
            "PUT", f"{self._prefix()}/customer/update", route="customer/update", body=payload
        )
        return self._written(answer, lambda a: self._own_record(a, cid))

    def _own_record(self, answer: Answer, cid: int) -> dict[str, Any]:
        record = self._record(answer)
        if record.get("CustomerID") != cid:
            raise UpstreamError(
                f"{self.system}: upstream answered for another customer",
                upstream_status=answer.status,
            )
        return record
