"""What the gateway takes and gives back: a parsed request, an admitted one, results.

Free of HTTP: the handlers build a :class:`Request`, ``Gateway.admit`` turns it into an
:class:`Admitted` one (``service.access`` decided), and the gateway answers with a
:class:`ReadResult` or an :class:`UpdateResult` the handler shapes into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.vocabulary import Problem
from policies import Principal
from service.upstreams import Connector


@dataclass(frozen=True, slots=True)
class Request:
    """What the handler parsed: who asks, about whom, why."""

    system: str
    customer_id: str
    principal: Principal
    purpose: str | None
    request_id: str


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request :func:`service.access.authorize` let through, with its system's
    connector. Only :meth:`Gateway.admit` makes one: reads and changes take it, so the
    check runs once per request and cannot be skipped."""

    request: Request
    connector: Connector


@dataclass(frozen=True, slots=True)
class ReadResult:
    customer: dict[str, Any]
    etag: str
    policy_version: str
    audit_id: str | None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    applied: bool
    dry_run: bool
    changed: tuple[str, ...]
    customer: dict[str, Any]
    audit_id: str | None
    policy_version: str


@dataclass(frozen=True, slots=True)
class Landed:
    """A forward the upstream applied: the record it answered (or a read showed), the
    problem code of an answer lost on the way (read back instead), the upstream status
    and the forward's latency - what its ``applied`` outcome records."""

    record: dict[str, Any]
    code: Problem | None
    status: int | None
    latency_ms: float
