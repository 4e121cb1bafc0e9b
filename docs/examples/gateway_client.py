"""A client of gdpr-gateway that retries safely (docs/clients.md, "Safe retries").

Every change gets one ``Idempotency-Key``, sent again on every retry of it, so a retry
after a dropped connection, a timeout or a 5xx can never apply the change twice. A 504
means the outcome is unknown: the client does not send the change again but polls the
status the answer names (``Location: /v1/changes/{audit_id}``) until it is settled.

    async with GatewayClient("http://127.0.0.1:8080", "demo-editor") as gateway:
        result = await gateway.patch("keycom", "4001", {"note": "called back"})
        print(result.state, result.status, result.audit_id)

Needs only aiohttp. Run ``python docs/examples/gateway_client.py URL TOKEN SYSTEM ID
JSON`` to send one change.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

#: answers after which the same request may be sent again (with the same key)
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503})


@dataclass
class Result:
    """How a change ended, as far as the client can tell."""

    status: int  # the last HTTP status
    state: str  # applied | rejected | failed | unknown | not_applied | pending
    audit_id: str | None
    body: dict[str, Any] = field(default_factory=dict)


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        purpose: str = "customer_service",
        attempts: int = 6,
        timeout_seconds: float = 30.0,
        backoff_seconds: float = 0.2,
        poll_seconds: float = 1.0,
        poll_for_seconds: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "X-Purpose": purpose}
        self.attempts = attempts
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.backoff = backoff_seconds
        self.poll_seconds = poll_seconds
        self.poll_for = poll_for_seconds
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GatewayClient:
        self._session = aiohttp.ClientSession(headers=self.headers, timeout=self.timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use GatewayClient in 'async with'"
        return self._session

    async def patch(self, system: str, customer_id: str, change: dict[str, Any]) -> Result:
        """Apply ``change`` at most once, retrying what may be retried."""
        url = f"{self.base_url}/v1/systems/{system}/customers/{customer_id}"
        key = str(uuid.uuid4())  # one key per change, the same on every retry of it
        headers = {"Idempotency-Key": key, "Content-Type": "application/merge-patch+json"}
        body = json.dumps(change)
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self._pause(attempt, last))
            try:
                async with self.session.patch(url, data=body, headers=headers) as resp:
                    payload = await _json(resp)
                    audit_id = resp.headers.get("X-Audit-Id")
                    if resp.status == 504 and "Location" in resp.headers:
                        # the outcome is unknown: never send it again, ask what became of it
                        return await self.wait_for(resp.headers["Location"], audit_id)
                    if resp.status in RETRY_STATUSES:
                        last = _Retry(resp.headers.get("Retry-After"))
                        continue
                    state = "applied" if resp.status < 400 else "rejected"
                    return Result(resp.status, state, audit_id, payload)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                last = exc  # the answer is lost, not necessarily the change: retry
        raise RuntimeError(f"gave up after {self.attempts} attempts ({type(last).__name__})")

    async def wait_for(self, location: str, audit_id: str | None = None) -> Result:
        """Poll ``GET /v1/changes/{audit_id}`` until the change is settled."""
        url = location if location.startswith("http") else self.base_url + location
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_for
        change: dict[str, Any] = {}
        while loop.time() < deadline:
            try:
                async with self.session.get(url) as resp:
                    if resp.status == 200:
                        change = await resp.json()
                        if change["settled"]:
                            return Result(200, _state(change), change["audit_id"], change)
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass  # a status read is safe to repeat
            await asyncio.sleep(self.poll_seconds)
        return Result(504, "unknown", audit_id, change)

    def _pause(self, attempt: int, last: Exception | None) -> float:
        if isinstance(last, _Retry) and last.after is not None and last.after.isdigit():
            return float(last.after)
        # exponential backoff with jitter, so that many clients do not retry in step
        pause: float = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
        return pause


class _Retry(Exception):
    def __init__(self, after: str | None) -> None:
        super().__init__("retry")
        self.after = after


def _state(change: dict[str, Any]) -> str:
    resolution = change.get("resolution")
    return str(resolution["outcome"]) if resolution else str(change["state"])


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return data if isinstance(data, dict) else {}


async def _main(argv: list[str]) -> int:
    url, token, system, customer_id, change = argv
    async with GatewayClient(url, token) as gateway:
        result = await gateway.patch(system, customer_id, json.loads(change))
    print(result.status, result.state, result.audit_id)
    return 0 if result.state in ("applied", "not_applied", "rejected") else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
