"""The audit log's CPU per change (``begin`` + durable ``finish``), two checkouts in turn.

    python -m bench.append_cpu --a DIR --b DIR [--store sqlite] [--rounds 3]
        [--changes 6000] [--tasks 64] [--path durable|gateway]

Each run is a fresh process on a fresh store (``bench.audit_bench``'s SQLite file or
scratch PostgreSQL database, its intents: two personal fields sealed before and after),
from one checkout (``PYTHONPATH=DIR``): ``--tasks`` tasks each write changes one after
the other, first a few to warm up (every subject's key made and cached), then
``--changes`` in all, measured. Printed per run: the CPU time of the event loop's thread
(``time.thread_time``: the Python side of every append, under the GIL) and of the whole
process (all threads: SQLite's writer thread too) per change, and changes per second.
Runs alternate A, B, A, B ... so that the machine's load hits both alike; the last lines
are the medians and the median ratio B/A of neighbouring runs. CPU time moves less with
the load than wall-clock rates, but on a shared machine still by 10-20 %: read ratios
over several rounds. ``--path gateway``: each change as the gateway writes one - under
the customer's lock (``subject_lock``), ``begin_queued``, then ``finish(durable=False)``
(its outcome queued, not waited for). Not a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

_WARM_UP = 20  # changes per task before the measured ones


async def _child(store: str, changes: int, tasks: int, path: str) -> dict[str, float]:
    from audit import AuditLog, Outcome
    from bench.audit_bench import MASTER, SIGNING, _intent, _store

    async with _store(store) as url:
        if url is None:
            raise SystemExit(f"{store} is not reachable")
        log = await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING)
        applied = Outcome("applied", None, 200, 12.5)

        async def durable(task: int, count: int, first: int) -> None:
            for n in range(first, first + count):
                intent_id = await log.begin(_intent(task * 1_000_000 + n))
                await log.finish(intent_id, applied)

        async def gateway(task: int, count: int, first: int) -> None:
            for n in range(first, first + count):
                intent = _intent(task * 1_000_000 + n)
                async with log.subject_lock(intent.system, intent.customer_id):
                    intent_id = await log.begin_queued(intent)
                    await log.finish(intent_id, applied, durable=False)

        writer = durable if path == "durable" else gateway

        try:
            await asyncio.gather(*(writer(t, _WARM_UP, 0) for t in range(tasks)))
            per_task = changes // tasks
            thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
            await asyncio.gather(*(writer(t, per_task, _WARM_UP) for t in range(tasks)))
            await log.settle()
            thread = time.thread_time() - thread
            process = time.process_time() - process
            wall = time.perf_counter() - wall
        finally:
            await log.close()
    done = per_task * tasks
    return {
        "loop_us": 1e6 * thread / done,
        "process_us": 1e6 * process / done,
        "per_second": done / wall,
        "load": os.getloadavg()[0],
    }


def _run(checkout: Path, args: argparse.Namespace) -> dict[str, float]:
    from bench.procs import child_on  # here: the child runs with another checkout's bench

    return child_on(checkout, __file__, "--store", args.store, "--changes", str(args.changes),
                    "--tasks", str(args.tasks), "--path", args.path)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, help="checkout B (after)")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=6000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--path", choices=("durable", "gateway"), default="durable")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.store, args.changes, args.tasks, args.path))))
        return 0
    if args.a is None or args.b is None:
        parser.error("--a and --b are required")
    from bench.procs import run_ab  # here: the child runs with another checkout's bench

    run_ab(args.a, args.b, args.rounds, lambda checkout: _run(checkout, args), lambda got: (
        f"event loop {got['loop_us']:6.1f} us/change, process {got['process_us']:6.1f} "
        f"us/change, {got['per_second']:6.0f} changes/s, load {got['load']:.2f}"
    ), {"loop_us": "event loop", "process_us": "process"})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
