"""Billbee: ``GET``/``PUT /api/v1/customers/{id}``, answers in an ``ErrorCode``/``Data``
envelope, API key AND HTTP Basic on every request, 2 requests/second per key, user and
endpoint.

Pacing: one token bucket per (credential, endpoint) held by the connector, at 90 % of
the configured limit (default the documented 2/s): the upstream counts arrivals in a
sliding one-second window, and network jitter can bring two paced requests closer
together than they were sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from common.vocabulary import System
from service.config_types import Credentials, SecretText
from service.errors import FieldProblem, UpstreamError, UpstreamRejected
from service.upstreams.answers import Answer, basic_auth
from service.upstreams.base import INT64_MAX, parse_customer_id
from service.upstreams.problems import CODE, problems_for
from service.upstreams.transport import PACING_MARGIN, HttpConnector

#: the documented limit, per API key + user + endpoint
DOCUMENTED_LIMIT_PER_SECOND: Final = 2.0
#: in the record, not taken by a PUT (archive state is changed by other endpoints)
NOT_WRITTEN: Final = frozenset({"ArchivedAt", "RestoredAt"})
ARCHIVED_FIELD: Final = "ArchivedAt"
ARCHIVED_MESSAGE: Final = "the upstream refuses changes to an archived customer"


class BillbeeCredentials(Credentials):
    """``X-Billbee-Api-Key`` and HTTP Basic, on every request."""

    api_key: SecretText
    username: SecretText
    password: SecretText


class BillbeeConnector(HttpConnector):
    system = System.BILLBEE
    mode = "put"
    read_coverage = frozenset(
        {
            "Id", "Number", "Name", "Email", "Tel1", "Tel2", "VatId", "LanguageId",
            "PriceGroupId", "Type", "ArchivedAt", "RestoredAt", "DefaultMailAddress",
            "DefaultCommercialMailAddress", "DefaultStatusUpdatesMailAddress",
            "DefaultPhone1", "DefaultPhone2", "DefaultFax", "MetaData",
        }
    )
    required_credentials = BillbeeCredentials.names()

    def _auth(self) -> dict[str, str]:
        creds = BillbeeCredentials.of(self.settings.credentials)
        return {
            "X-Billbee-Api-Key": creds.api_key.reveal(),
            "Authorization": basic_auth(creds.username, creds.password),
        }

    def _pacing_rate(self) -> float | None:
        # Always paced: without a configured limit, the documented one.
        limit = self.settings.rate_limit_per_second or DOCUMENTED_LIMIT_PER_SECOND
        return limit * PACING_MARGIN

    def _bucket_key(self, method: str, route: str) -> str | None:
        # The limit is per key and user: a fingerprint of both (never the secrets
        # themselves) keys the bucket, then the endpoint.
        creds = BillbeeCredentials.of(self.settings.credentials)
        fingerprint = hashlib.sha256(
            f"{creds.api_key.reveal()}\0{creds.username.reveal()}".encode()
        ).hexdigest()[:16]
        return f"{fingerprint} {method} {route}"

    def _special_error(self, answer: Answer) -> UpstreamError | None:
        if answer.status in (400, 403, 409, 422) and _mentions_archive(answer.body):
            return UpstreamRejected(
                f"{self.system}: upstream refuses changes to an archived customer",
                upstream_status=answer.status,
                errors=[FieldProblem(ARCHIVED_FIELD, CODE, ARCHIVED_MESSAGE)],
            )
        return None

    def _problems(self, answer: Answer) -> list[FieldProblem]:
        # The envelope's description lists problems as "Field must be ...; Other.Sub
        # must be ...": the leading path of each part is the field (kept only when it is
        # one of Billbee's fields, so that no value can pass as a name).
        body = answer.body
        names: list[object] = []
        if isinstance(body, Mapping):
            for key in ("ErrorDescription", "ErrorMessage"):
                text = body.get(key)
                if isinstance(text, str):
                    names.extend(part.strip().split(" ", 1)[0] for part in text.split(";"))
        return problems_for(names, known=self.known_fields) or super()._problems(answer)

    def _data(self, answer: Answer) -> dict[str, Any]:
        body = answer.body
        if type(body) is not dict and not isinstance(body, Mapping):
            raise self._malformed(answer.status)
        code = body.get("ErrorCode", 0)
        if code not in (0, None):
            raise UpstreamError(
                f"{self.system}: upstream reported an error in a success answer",
                upstream_status=answer.status,
            )
        return self._record_of(body.get("Data"), "Id", answer.status)

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id, INT64_MAX)
        answer = await self._call("GET", f"api/v1/customers/{cid}", route="customers/{id}")
        return self._data(answer)

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id, INT64_MAX)
        payload = {k: v for k, v in body.items() if k not in NOT_WRITTEN}
        payload["Id"] = cid
        answer = await self._call(
            "PUT", f"api/v1/customers/{cid}", route="customers/{id}", body=payload
        )
        return self._written(answer, self._data)


def _mentions_archive(body: Any) -> bool:
    if not isinstance(body, Mapping):
        return False
    for key in ("ErrorMessage", "ErrorDescription"):
        text = body.get(key)
        if isinstance(text, str) and "archiv" in text.lower():
            return True
    return False
