"""The metrics of one worker in multiprocess mode (``service/multiproc.py``): what the
shared files cannot carry still reaches ``/metrics``. Run in a process of its own, since
the mode is chosen per process before any metric exists."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families
    from service import multiproc

    multiproc.enable(sys.argv[1])
    from service.metrics import Metrics, metrics_handler

    metrics = Metrics(CollectorRegistry())
    metrics.watch_audit_locks(lambda: (3, 24))  # read by a function at each scrape
    metrics.policy_versions({"keycom": "v-7"})  # an Info: not in the shared files
    metrics.decision("keycom", "allowed", None)

    from aiohttp.test_utils import make_mocked_request

    async def scrape() -> str:
        response = await metrics_handler(metrics)(make_mocked_request("GET", "/metrics"))
        return response.body.decode()

    found = {}
    for family in text_string_to_metric_families(asyncio.run(scrape())):
        for s in family.samples:
            found[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    print(json.dumps(found))
""")


def test_function_gauges_and_info_reach_a_workers_metrics(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", WORKER, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout)
    assert found['gdpr_gateway_audit_lock_connections{"state": "in_use"}'] == 3.0
    assert found['gdpr_gateway_audit_lock_connections{"state": "max"}'] == 24.0
    assert found['gdpr_gateway_policy_info{"system": "keycom", "version": "v-7"}'] == 1.0
    allowed = '{"code": "none", "outcome": "allowed", "system": "keycom"}'
    assert found["gdpr_gateway_decisions_total" + allowed] == 1.0
    assert list(tmp_path.glob("counter_*.db"))  # the counters live in the shared files
