"""The toy shop's API: ``GET``/``PATCH shoppers/{id}``, an ``X-Toy-Key`` header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.config_types import Credentials, SecretText
from service.upstreams.answers import Answer
from service.upstreams.base import parse_customer_id
from service.upstreams.transport import HttpConnector


class ToyshopCredentials(Credentials):
    """One API key."""

    api_key: SecretText


class ToyshopConnector(HttpConnector):
    system = "toyshop"
    mode = "patch"
    read_coverage = frozenset({"id", "name", "email", "points"})
    required_credentials = ToyshopCredentials.names()

    def _auth(self) -> dict[str, str]:
        return {"X-Toy-Key": ToyshopCredentials.of(self.settings.credentials).api_key.reveal()}

    def _record(self, answer: Answer) -> dict[str, Any]:
        if not isinstance(answer.body, Mapping) or "id" not in answer.body:
            raise self._malformed(answer.status)
        return dict(answer.body)

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        return self._record(await self._call("GET", f"shoppers/{cid}", route="shoppers/{id}"))

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        cid = parse_customer_id(self.system, customer_id)
        answer = await self._call("PATCH", f"shoppers/{cid}", route="shoppers/{id}", body=body)
        return self._written(answer, self._record)
