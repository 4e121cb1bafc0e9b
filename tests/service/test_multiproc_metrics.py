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



FILES = textwrap.dedent("""
    import json, os, sys
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
    from service import multiproc

    multiproc.enable(sys.argv[1])
    registry = CollectorRegistry()
    first = Counter("first", "a counter created before the file grows", registry=registry)
    first.inc()
    # enough series to outgrow the file's first map (64 KiB): the file is mapped anew
    many = Counter("many", "many series", ["n"], registry=registry)
    for n in range(1500):
        many.labels(str(n)).inc(n)
    first.inc(2)  # written through the new map
    Histogram("seconds", "a histogram", buckets=(0.1, 1.0), registry=registry).observe(0.5)
    Gauge("up", "a gauge", multiprocess_mode="livemin", registry=registry).set(1)

    child = os.fork()
    if child == 0:  # a child that updates: its own files, from 0 (as the library's)
        first.inc(10)
        os._exit(0)
    os.waitpid(child, 0)
    multiproc.mark_dead(sys.argv[1], child)  # as the supervisor does: its live gauges go
    pid = os.fork()
    if pid == 0:  # a child that only execs (or exits): no file of its own
        os._exit(0)
    os.waitpid(pid, 0)

    read = CollectorRegistry()
    multiprocess.MultiProcessCollector(read, path=sys.argv[1])
    found = {}
    for family in read.collect():
        for s in family.samples:
            found[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    print(json.dumps({"found": found, "files": sorted(os.listdir(sys.argv[1])),
                      "pid": os.getpid(), "first": first._value.get()}))
""")


def test_values_reach_the_files_through_growth_and_forks(tmp_path: Path) -> None:
    """The files are the library's (its collector reads them); a value created before the
    file grew is still written; a forked child that updates has its own files."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", FILES, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    found = result["found"]
    assert found["first_total{}"] == 3.0 + 10.0  # the parent's 3, the child's own 10
    assert result["first"] == 3.0  # the child's update did not reach the parent
    assert found['many_total{"n": "1499"}'] == 1499.0
    assert sum(v for k, v in found.items() if k.startswith("many_total")) == sum(range(1500))
    assert found['seconds_bucket{"le": "0.1"}'] == 0.0
    assert found['seconds_bucket{"le": "1.0"}'] == 1.0
    assert found["seconds_count{}"] == 1.0 and found["seconds_sum{}"] == 0.5
    assert found["up{}"] == 1.0
    files = {(name.rsplit("_", 1)[0], int(name.rsplit("_", 1)[1].split(".")[0]))
             for name in result["files"]}  # fmt: skip
    parent = result["pid"]
    assert {kind for kind, pid in files if pid == parent} == {
        "counter", "histogram", "gauge_livemin"
    }
    # the child that wrote: its counters and histograms stay, its live gauge went;
    # the child that did not write left no file
    assert {kind for kind, pid in files if pid != parent} == {"counter", "histogram"}
    assert len({pid for _, pid in files}) == 2
