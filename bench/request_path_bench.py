"""Micro-benchmark of the request path's own pieces (issue 11), in-process, no network.

    python -m bench.request_path_bench

Prints the best per-call CPU time (µs, ``time.process_time``) of: the edge middleware
around a handler that answers at once (request id, metric, headers, the access line to
/dev/null), minus the handler alone; the strict parse of a PATCH body; the parse of an
upstream answer (twice per change); the canonical JSON of an audit body (twice per
change); the decision and masking counters; ``vocabulary.parse``. The same script runs
on any commit since issue 11, so a before and after is two runs. Not a test assertion.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from audit.chain import canonical
from common.vocabulary import Action, AuditOutcome, Purpose, Verdict, parse
from service.app import create_app
from service.demo_settings import demo_settings
from service.edge import edge_middleware
from service.json_codec import loads_strict
from service.keys import METRICS_KEY
from service.logs import configure_logging
from service.metrics import Metrics
from service.routes.common import parse_json

PATCH = b'{"Note": "called about the invoice", "Phone": "+45 12 34 56 78"}'
RECORD = json.dumps({
    "CustomerNo": "K-100234", "Name": "Havnefront Arkitekter ApS", "Email": "info@example.dk",
    "Phone": "+45 33 12 34 56", "Street": "Havnegade 12", "Zip": "1058", "City": "København K",
    "Country": "DK", "VatNo": "DK12345678", "Created": "2021-03-04T10:11:12Z",
    "Modified": "2024-05-06T07:08:09.123Z", "Balance": 1234.5, "CreditLimit": 10000,
    "Active": True, "Tags": ["a", "b"], "Note": "x" * 200,
    "Contacts": [{"Name": "Jens Hansen", "Email": "jh@example.dk", "Phone": "12345678"}],
    "Version": 17, "Id": 1002345,
}).encode()  # fmt: skip
AUDIT_BODY = {
    "v": 2, "audit_id": "0192aa", "time": "2026-11-30T00:00:00.000Z", "actor": "demo-editor",
    "roles": ["editor"], "system": "keycom", "customer_id": "1234",
    "purpose": "customer_service", "request_id": "abc", "action": Action.UPDATE,
    "phase": "intent", "outcome": AuditOutcome.APPLIED, "problem_code": None,
    "upstream_status": 200, "upstream_latency_ms": 3.123, "intent_id": None,
    "changed": ["Note"], "before": {"Note": "x"}, "after": {"Note": "y"},
    "policy_version": "v1", "reason": None, "target_id": None,
    "sealed": {"before": {"paths": ["Phone"], "ct": "abcdef" * 20}},
}  # fmt: skip


def best(run: Callable[[int], object], number: int, repeat: int = 5) -> float:
    """The best per-call CPU time in µs of ``run(number)`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        run(number)
        times.append((time.process_time() - started) / number * 1e6)
    return min(times)


async def best_async(run: Callable[[int], Awaitable[None]], number: int) -> float:
    times = []
    for _ in range(5):
        started = time.process_time()
        await run(number)
        times.append((time.process_time() - started) / number * 1e6)
    return min(times)


def count_decisions_and_masks(metrics: Metrics, n: int) -> None:
    """``n`` changes' decision and masking counters."""
    for _ in range(n):
        metrics.decision("keycom", Verdict.ALLOWED, None)
        metrics.masked({"partial": 3, "redact": 1})


def gateway_app() -> web.Application:
    """The gateway's app, not started: its middleware, routes and metrics."""
    folder = Path(tempfile.mkdtemp(prefix="request-path-bench-"))
    settings = demo_settings(
        port=0, state_dir=folder,
        upstream_urls={s: "http://127.0.0.1:1" for s in ("timelog", "billbee", "sedona", "keycom")},
        audit_url=f"sqlite+aiosqlite:///{folder}/audit.db",
        master_key=os.urandom(32), signing_key=os.urandom(32),
    )  # fmt: skip
    return create_app(settings, registry=CollectorRegistry())


async def edge_cost(app: web.Application) -> float:
    """The edge middleware's own cost per request (a mocked request, reused)."""
    app.freeze()
    path = "/v1/systems/keycom/customers/1001"
    match_info = await app.router.resolve(make_mocked_request("PATCH", path, app=app))
    match_info.add_app(app)
    match_info.freeze()
    request = make_mocked_request("PATCH", path, app=app, match_info=match_info)

    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=b'{"a":1}', content_type="application/json")

    async def edge(number: int) -> None:
        for _ in range(number):
            request._state.clear()
            await edge_middleware(request, answer)

    async def bare(number: int) -> None:
        for _ in range(number):
            request._state.clear()
            await answer(request)

    return await best_async(edge, 3000) - await best_async(bare, 3000)


def main() -> int:
    configure_logging("info")
    app = gateway_app()
    metrics = app[METRICS_KEY]
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115 - the access lines
    try:
        edge = asyncio.run(edge_cost(app))
    finally:
        sys.stderr.close()
        sys.stderr = stderr
    rows = [
        ("edge middleware and access line, per request", edge),
        ("PATCH body, strict parse", best(lambda n: [parse_json(PATCH) for _ in range(n)], 20000)),
        ("upstream answer parse (2 per change)",
         best(lambda n: [loads_strict(RECORD) for _ in range(n)], 20000)),
        ("audit body, canonical JSON (2 per change)",
         best(lambda n: [canonical(AUDIT_BODY) for _ in range(n)], 20000)),
        ("decision and masking counters",
         best(lambda n: count_decisions_and_masks(metrics, n), 20000)),
        ("vocabulary.parse (a member)",
         best(lambda n: [parse(Purpose, "customer_service") for _ in range(n)], 50000)),
    ]  # fmt: skip
    print("# request path micro-benchmark (best CPU µs per call)")
    for name, micros in rows:
        print(f"{micros:8.2f} µs  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
