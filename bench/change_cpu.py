"""The audit log's own steps per change on the event loop, two checkouts in turn.

    python -m bench.change_cpu --a DIR --b DIR [--rounds 6] [--changes 6400] [--tasks 32]

Each run is a fresh process on a fresh SQLite file (``PYTHONPATH=DIR``), writing changes
as the gateway does on keycom (issue 11, branch ``i11-rec``): ``--tasks`` tasks, each
change under its customer's lock, ``begin_queued`` of a keycom-shaped intent (one
personal field, sealed before and after; the subjects' keys made and cached in a
warm-up), then ``finish(durable=False)`` of an ``applied`` outcome. Printed per run: the
median time of one ``begin_queued`` call (its step before the first await: checked,
split, sealed, encoded, queued) and of one ``finish`` (nothing in it awaits: built,
encoded, queued), each call timed alone with ``perf_counter_ns`` - a median of
thousands, so that the calls another process's work stretched do not count -, and the
event loop thread's CPU per change (``time.thread_time``: the writer task's Python too,
and the load's noise). Runs alternate A, B, A, B ...; the last lines are the medians and
the median ratio B/A. Not a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

_WARM_UP = 20  # changes per task before the measured ones
_SUBJECTS = 500


async def _child(changes: int, tasks: int) -> dict[str, float]:
    from audit import AuditLog, Intent, Outcome
    from common.vocabulary import Action, AuditOutcome

    def intent(n: int) -> Intent:
        return Intent(
            actor="demo-editor", roles=("editor",), system="keycom",
            customer_id=str(100000 + n % _SUBJECTS), purpose="customer_service",
            request_id=f"bench-{n:012d}", action=Action.UPDATE, changed=("phone",),
            before={"phone": "+358 40 1234567"}, after={"phone": f"+358 {n % 100} 7654321"},
            protected={"phone": "personal"}, policy_version="sha256:" + "ab" * 32,
            retention_days=1095,
        )  # fmt: skip

    begins: list[int] = []
    finishes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="i11-rec-bench-") as scratch:
        log = await AuditLog.open(
            f"sqlite:///{scratch}/audit.db", master_key=os.urandom(32),
            signing_key=os.urandom(32), create=True,
        )  # fmt: skip
        clock = time.perf_counter_ns

        async def writer(task: int, first: int, count: int, timed: bool) -> None:
            for n in range(first, first + count):
                change = intent(task * 1_000_000 + n)
                async with log.subject_lock(change.system, change.customer_id):
                    started = clock()
                    begun = log.begin_queued(change)
                    queued = clock()
                    intent_id = await begun
                    outcome = Outcome(AuditOutcome.APPLIED, None, 200, 12.345)
                    finishing = clock()
                    await log.finish(intent_id, outcome, durable=False)
                    finished = clock()
                if timed:
                    begins.append(queued - started)
                    finishes.append(finished - finishing)

        try:
            await asyncio.gather(*(writer(t, 0, _WARM_UP, False) for t in range(tasks)))
            per_task = changes // tasks
            thread, wall = time.thread_time(), time.perf_counter()
            await asyncio.gather(*(writer(t, _WARM_UP, per_task, True) for t in range(tasks)))
            await log.settle()
            thread, wall = time.thread_time() - thread, time.perf_counter() - wall
        finally:
            await log.close()
    done = per_task * tasks
    return {
        "begin_us": statistics.median(begins) / 1000,
        "finish_us": statistics.median(finishes) / 1000,
        "loop_us": 1e6 * thread / done,
        "per_second": done / wall,
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, help="checkout B (after)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--changes", type=int, default=6400)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.changes, args.tasks))))
        return 0
    if args.a is None or args.b is None:
        parser.error("--a and --b are required")
    from bench.procs import child_on, run_ab

    def run(checkout: Path) -> dict[str, float]:
        # this file, run on the other checkout's code (it need not have this bench)
        return child_on(checkout, __file__, "--changes", str(args.changes),
                        "--tasks", str(args.tasks))  # fmt: skip

    run_ab(args.a, args.b, args.rounds, run, lambda got: (
        f"begin_queued {got['begin_us']:5.1f} us, finish {got['finish_us']:5.1f} us (medians),"
        f" event loop {got['loop_us']:6.1f} us/change, {got['per_second']:5.0f} changes/s,"
        f" load {got['load']:.2f}"
    ), {"begin_us": "begin_queued", "finish_us": "finish", "loop_us": "event loop"})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
