"""Keypro KeyCom: ``GET``/``PATCH customers/{id}/``, ``Authorization: Token <40 hex>``.

The upstream updates only the given fields, so the patch is forwarded as it is (with
no edit-conflict re-read before it: it cannot overwrite what it does not send) and
never retried once it may have been sent (see ``transport``): ``modified`` changes on
every write, so a second send is a second write, not a repeat of the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from common.vocabulary import System
from service.config_types import Credentials, SecretText, hex_digits
from service.upstreams.answers import Answer
from service.upstreams.base import content_tag, parse_customer_id
from service.upstreams.transport import HttpConnector


class KeycomCredentials(Credentials):
    """``Authorization: Token <40 hex>``."""

    token: Annotated[SecretText, hex_digits(40)]


class KeycomConnector(HttpConnector):
    system = System.KEYCOM
    mode = "patch"
    #: A PATCH sends only the fields the change names, and KeyCom updates only those: it
    #: cannot overwrite a field changed meanwhile, and changes through the gateway to
    #: one customer are serialised by the subject lock. So no edit-conflict re-read: one
    #: GET (the pre-image) and one PATCH per change (docs/upstreams.md).
    conflict_reread = False
    read_coverage = frozenset(
        {
            "address_id", "language_id", "restricted_type_id", "status_id", "type_id",
            "apartment_id", "cooperative_date", "cooperative_member",
            "cooperative_reimbursement_date", "cooperative_sum", "country", "email", "name",
            "name_extension", "number", "phone", "identification", "invoicing_country",
            "invoice_name", "editable_by_customer", "sms_disabled", "note", "phone2",
            "sms_numbers", "personal_id", "water_database_id",
        }
    )
    required_credentials = KeycomCredentials.names()

    def _auth(self) -> dict[str, str]:
        token = KeycomCredentials.of(self.settings.credentials).token
        return {"Authorization": f"Token {token.reveal()}"}

    def version_tag(self, record: Mapping[str, Any]) -> str:
        modified = record.get("modified")
        if isinstance(modified, str) and modified:
            return modified
        return content_tag(record)

    def _record(self, answer: Answer) -> dict[str, Any]:
        return self._record_of(answer.body, "id", answer.status)

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        return self._record(await self._call("GET", f"customers/{cid}/", route="customers/{id}/"))

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        answer = await self._call("PATCH", f"customers/{cid}/", route="customers/{id}/", body=body)
        return self._written(answer, self._record)
