"""The one small interface every upstream connector offers, and pure helpers for it.

The gateway codes against :class:`Connector` only; ``build_connector`` (in
``service.upstreams.factory``) picks the class for a system.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, Protocol, runtime_checkable

from common.canonical import canonical_json
from service.errors import CustomerNotFound
from service.upstreams.breaker import CircuitBreaker

Mode = Literal["put", "patch"]

#: ``observe(system, method, status_or_None, seconds)``: called once per HTTP attempt.
Observe = Callable[[str, str, int | None, float], None]

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1

_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,18}")


@runtime_checkable
class Connector(Protocol):
    """One upstream system, as the gateway sees it.

    ``mode``: ``put`` sends the whole merged object (timelog, billbee, sedona);
    ``patch`` forwards the patch (keycom).
    ``read_coverage``: the top-level WRITE-model field names a ``fetch`` returns; a
    whole-object write must not clear a writable field outside it.
    ``conflict_reread``: whether a change re-reads the record before its write (the
    edit-conflict check, docs/upstreams.md "Upstream calls per change"): needed where
    the write sends the whole object and so could overwrite a field changed meanwhile.
    """

    system: str
    mode: Mode
    conflict_reread: bool
    read_coverage: frozenset[str]
    breaker: CircuitBreaker

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        """The record in write names. ``CustomerNotFound`` for an unknown or malformed id."""
        ...

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Write (whole object or patch); the record after the write, in write names."""
        ...

    def version_tag(self, record: Mapping[str, Any]) -> str:
        """A stable tag of a fetched record, for edit-conflict checks."""
        ...

    async def close(self) -> None: ...


def parse_customer_id(system: str, customer_id: str, max_id: int = INT32_MAX) -> int:
    """The id as the upstream's integer, or ``CustomerNotFound`` without any call.

    Only the canonical decimal form is accepted (no sign, no leading zero, no spaces,
    ASCII digits only, 1..max_id): ``"0012"`` and ``"12"`` must never name two audit
    subjects for one customer. The id is never put into the message.
    """
    if not isinstance(customer_id, str) or _CANONICAL_ID.fullmatch(customer_id) is None:
        raise CustomerNotFound(f"{system}: customer id is not a valid {system} id")
    value = int(customer_id)
    if value > max_id:
        raise CustomerNotFound(f"{system}: customer id is out of range for {system}")
    return value


def content_tag(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON (UTF-8; NaN refused)."""
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()


_MISSING: Final = object()


def record_shows(record: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether ``record`` (as a fetch returns it) holds every ``values`` path (``A``,
    ``A.B``, ``A[0].B``, as a policy decision names them) with that value: how a read
    tells that a write whose answer was lost did land. Nothing to compare: ``False``."""
    if not values:
        return False
    return all(_lookup(record, path) == value for path, value in values.items())


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    current: Any = record
    for part in path.replace("[", ".[").split("."):
        if part.startswith("[") and part.endswith("]") and isinstance(current, list):
            index = int(part[1:-1])
            if index >= len(current):
                return _MISSING
            current = current[index]
        elif isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current
