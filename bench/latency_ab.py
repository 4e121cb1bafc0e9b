"""The latency one change at a time, two checkouts of the gateway against the reference,
interleaved in short turns (issue 11).

    python -m bench.latency_ab --a /path/to/base --b . [--system keycom|billbee]
        [--store sqlite|postgres] [--changes 2000] [--warmup 200] [--customers N]

``gateway_bench``'s latency phase runs each server in turn, for seconds each: on a
machine shared with other work its figures move with the load more than with the code.
Here the emulators, the reference proxy (``bench/bare_proxy.py``, this checkout's) and
both gateways (``gdpr-gateway serve`` with ``PYTHONPATH`` at each checkout, each with a
fresh audit store, configured as ``gateway_bench`` configures them) run at once, and one
client sends one change at a time to each in turn (``BLOCK`` changes each, in a new
order every turn), so that the three see the same load. Each request is a PATCH of one
field of a customer the policy lets the caller change (``bench/load.py``), a new value
each time; an answer that is not 200 (and ``"applied": true`` from a gateway) stops the
run. Printed: each server's p50/p90/p99, the latency each gateway adds (its percentile
minus the reference's) and the 1-minute load before and after.

Each gateway starts empty, and a customer's first change in a process takes the audit's
full path (its data key made or looked up in the commit). Among all ~9,800 eligible
customers nearly every measured change is a first one; ``make bench``'s latency phase
follows 12 s of load in the same process (~28,000 changes at the last run's ~2,300/s:
~94 % of the customers touched), so its changes mostly find the key cached.
``--customers 40 --warmup 300`` measures that case (each customer changed several times
in the warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.load import PURPOSE, WORKLOADS, eligible_customers
from bench.procs import (
    TOKEN,
    BenchError,
    Emulators,
    audit_store,
    cli,
    free_port,
    gateway_config,
    run_cli,
    server,
)

#: changes sent to one server in a row: most follow that server's previous answer at
#: once, as one connection's do (wrk -c1), not after the other servers' turns (which
#: would leave time for what a server does after answering)
BLOCK = 10


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    at = {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.9, 0.99)}
    return {"p50": statistics.median(ordered), "p90": at[0.9], "p99": at[0.99]}


class Target:
    """One server under test and its latencies (ms), over one keep-alive connection."""

    def __init__(self, name: str, port: int, gateway: bool) -> None:
        self.name, self.gateway = name, gateway
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.ms: list[float] = []

    def change(self, path: str, body: bytes, *, record: bool) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Purpose": PURPOSE,
                   "Content-Type": "application/json"}  # fmt: skip
        started = time.perf_counter()
        self.conn.request("PATCH", path, body=body, headers=headers)
        answer = self.conn.getresponse()
        payload = answer.read()
        elapsed = (time.perf_counter() - started) * 1000.0
        if answer.status != 200 or (self.gateway and not json.loads(payload).get("applied")):
            raise BenchError(f"{self.name}: answer {answer.status}, not an applied change")
        if record:
            self.ms.append(elapsed)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workload = WORKLOADS[args.system]
    ids = eligible_customers(workload).ids
    rng = random.Random(args.seed)
    if args.customers:
        ids = rng.sample(ids, min(args.customers, len(ids)))
    used: set[int] = set()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="latency-ab-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        emulators = stack.enter_context(Emulators(folder / "emulators.log"))
        ref_port = free_port()
        stack.enter_context(server(
            [sys.executable, "-m", "bench.bare_proxy", "--port", str(ref_port), "--billbee",
             emulators.urls["billbee"], "--keycom", emulators.urls["keycom"], "--uvloop",
             "--reread"],
            ref_port, "reference", folder / "reference.log",
        ))  # fmt: skip
        targets = [Target("reference", ref_port, gateway=False)]
        for name, checkout in (("A", args.a), ("B", args.b)):
            env = dict(os.environ, PYTHONPATH=str(Path(checkout).resolve()))
            url = stack.enter_context(audit_store(args.store, folder))
            port = free_port()
            config = gateway_config(folder, port=port, audit_url=url, urls=emulators.urls,
                                    conflict_check=True)  # fmt: skip
            with contextlib.ExitStack() as upgrade:  # run_cli with the checkout's code
                upgrade.enter_context(_environ(env))
                run_cli("db", "upgrade", "--config", str(config))
            stack.enter_context(server([cli(), "serve", "--config", str(config)], port,
                                       f"gateway {name}", folder / f"gateway-{name}.log", env=env))
            targets.append(Target(name, port, gateway=True))
        n = 0
        for turn in range(-(-(args.warmup + args.changes) // BLOCK)):
            for target in rng.sample(targets, len(targets)):  # a new order each turn
                for _ in range(BLOCK):
                    n += 1
                    value = workload.value_format % (rng.randrange(100, 999), n)
                    body = json.dumps({workload.field: value}).encode()
                    customer = rng.choice(ids)
                    used.add(customer)
                    path = f"/v1/systems/{args.system}/customers/{customer}"
                    target.change(path, body, record=turn * BLOCK >= args.warmup)
    result: dict[str, Any] = {
        "system": args.system, "store": args.store, "changes": args.changes,
        "customers": len(used), "load_before": load_before, "load_after": os.getloadavg()[0],
        "a": str(args.a), "b": str(args.b),
    }  # fmt: skip
    ref = _percentiles(targets[0].ms)
    for target in targets:
        mine = _percentiles(target.ms)
        result[target.name] = {k: round(v, 3) for k, v in mine.items()}
        if target.gateway:
            result[f"added_{target.name}"] = {k: round(mine[k] - ref[k], 3) for k in mine}
    return result


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", type=Path, required=True, help="checkout A (e.g. the base)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (e.g. this one)")
    parser.add_argument("--system", choices=tuple(WORKLOADS), default="keycom")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--changes", type=int, default=2000, help="measured, per server")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured, per server")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--customers", type=int, default=0,
                        help="pick among this many customers (0: all the eligible ones)")
    args = parser.parse_args(argv)
    if args.changes < 1 or args.warmup < 0 or args.customers < 0:
        parser.error("--changes must be at least 1, --warmup and --customers at least 0")
    try:
        result = run(args)
    except BenchError as exc:
        print(f"latency_ab: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
