"""SedonaOffice: ``GET``/``PUT api/customer/{id}``, HTTP Basic (per company database).

A whole-object PUT. The computed fields (balances, statement date, the display name)
and ``CustomerGroupID`` (set by the upstream from ``GroupCode``) are not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from common.vocabulary import System
from service.config_types import Credentials, SecretText
from service.errors import GatewayError, UpstreamOutcomeUnknown
from service.upstreams.answers import Answer, basic_auth
from service.upstreams.base import parse_customer_id
from service.upstreams.transport import HttpConnector

#: in the record, never written ("read only; do not set explicitly")
NOT_WRITTEN: Final = frozenset(
    {
        "LastStatementDate", "StatementBalance", "BalanceDue", "TotalActiveRMR",
        "TotalActiveRAR", "FullNameAndNumber", "CustomerGroupID",
    }
)


class SedonaCredentials(Credentials):
    """HTTP Basic (per company database)."""

    username: SecretText
    password: SecretText


class SedonaConnector(HttpConnector):
    system = System.SEDONA
    mode = "put"
    read_coverage = frozenset(
        {
            "CustomerId", "CustomerNumber", "CustomerName", "StatusCode", "TypeCode",
            "CollectionStatusCode", "SalespersonCode", "TermCode", "TaxExemptNum",
            "BlanketPO", "BlanketPOExpire", "OldCustomerNumber", "NoLateFees",
            "NoStatements", "NoCollections", "OkToIncreaseDate", "PrintSiteOnInvoices",
            "PrintStatements", "PrintCycleInvoices", "RollUpRecurring", "CustomerSince",
            "BranchCode", "GroupCode", "Group2Code", "CustomerName2", "MasterAccountCode",
            "CustomerRelationCode", "IsMaster", "MasterAccountBilling", "CustomerBillPrimary",
        }
    )
    required_credentials = SedonaCredentials.names()

    def _auth(self) -> dict[str, str]:
        creds = SedonaCredentials.of(self.settings.credentials)
        return {"Authorization": basic_auth(creds.username, creds.password)}

    def _record(self, answer: Answer) -> dict[str, Any]:
        if not isinstance(answer.body, Mapping) or "CustomerId" not in answer.body:
            raise self._malformed(answer.status)
        return dict(answer.body)

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        return self._record(await self._call("GET", f"api/customer/{cid}", route="customer/{id}"))

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        payload = {k: v for k, v in body.items() if k not in NOT_WRITTEN}
        payload["CustomerId"] = cid
        answer = await self._call(
            "PUT", f"api/customer/{cid}", route="customer/{id}", body=payload
        )
        if answer.body is None:
            # The vendor documents no answer body for the PUT: read the result back
            # (a GET, safe to send). The upstream took the write: if that read fails,
            # its outcome is unknown, not failed.
            try:
                return await self.fetch(customer_id)
            except GatewayError as exc:
                raise UpstreamOutcomeUnknown(
                    f"{self.system}: the write was taken but could not be read back"
                    f" ({exc.code}); outcome unknown",
                    upstream_status=answer.status,
                ) from None
        return self._written(answer, self._record)
