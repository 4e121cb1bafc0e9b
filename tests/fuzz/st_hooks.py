"""schemathesis hooks for tests/fuzz/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

The served document has one customer path per system with that system's typed PATCH
body; random ids seldom name a customer, so the patch would only ever meet 404. Here
three positive cases in four get a customer id that exists in the emulators (the demo's
records and its generated range), chosen from the drawn id, so a run is repeatable; the
fourth keeps the drawn id (404, or a poison id). A case whose path is the negative part
keeps its id. Only the test run narrows ids: the served document stays as it is.

An ``Idempotency-Key`` is chosen once per change (docs/clients.md); a generator that sends
the key ``"0"`` with two different bodies is answered 422 ``idempotency_key_reused``,
rightly, and the schema cannot say so. A positive PATCH's key gets a suffix of its own
(a count of the cases), so no two changes share one; replays are tested in
tests/service/test_idempotency.py.
"""

from __future__ import annotations

import itertools
import re
import zlib
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

_CASES = itertools.count()
CUSTOMER = re.compile(r"^/v1/systems/([a-z]+)/customers/\{customer_id\}$")
# docs/api.md "Demo data": the named records, then some of the generated 100000-109999
KNOWN: dict[str, tuple[str, ...]] = {
    "billbee": ("1001", "1002", "1002", "100007", "100421"),
    "sedona": ("2001", "2001", "100007", "100421"),
    "timelog": ("3001", "3001", "100007", "100421"),
    "keycom": ("4001", "4002", "4001", "100007", "100421"),
}


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    match = CUSTOMER.match(case.operation.path)
    if match is None or match.group(1) not in KNOWN or case.path_parameters is None:
        return case
    meta = case.meta
    path = meta.components.get(ParameterLocation.PATH) if meta is not None else None
    if path is not None and path.mode == GenerationMode.NEGATIVE:
        return case
    drawn = str(case.path_parameters.get("customer_id", ""))
    pick = zlib.crc32(drawn.encode("utf-8", "surrogatepass"))
    if pick % 4:
        ids = KNOWN[match.group(1)]
        case.path_parameters["customer_id"] = ids[pick % len(ids)]
    _one_key_per_request(case, meta)
    return case


def _one_key_per_request(case: Any, meta: Any) -> None:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    info = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
    if key is None or (info is not None and info.mode == GenerationMode.NEGATIVE):
        return
    headers["Idempotency-Key"] = f"{str(key)[:200]}-{next(_CASES)}"
