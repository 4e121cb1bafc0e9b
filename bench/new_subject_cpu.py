"""The audit log's CPU per change for subjects new to the store, two checkouts in turn.

    python -m bench.new_subject_cpu --a DIR --b DIR [--store sqlite] [--rounds 3]
        [--changes 6000] [--tasks 32] [--customers new|known]

Each run is a fresh process on a fresh store (``bench.audit_bench``'s SQLite file or
scratch PostgreSQL database), from one checkout (``PYTHONPATH=DIR``): ``--tasks`` tasks
write ``--changes`` changes as the gateway does (the customer's lock, ``begin_queued``,
``finish(durable=False)``), keycom's intent (one personal field sealed). ``--customers
new``: every change is a customer's first, so its subject key is made in the change's
batch (the make-bench pattern with ~9,600 customers on a fresh store, at its worst);
``known``: 200 customers, whose keys are made in a warm-up and cached. Printed per run:
the event loop thread's CPU (``time.thread_time``) and the whole process's (all threads:
SQLite's writer thread too) per change, changes per second, and how many batches went
the full way (``Backend.chain``) and how many were sent on the expected head
(``Backend.append_if_head``). Runs alternate A, B, A, B ...; the last lines are the
medians and the median ratio B/A of neighbouring runs. Not a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

_KNOWN = 200  # customers of a ``known`` run


async def _child(store: str, changes: int, tasks: int, customers: str) -> dict[str, float]:
    from audit import AuditLog, Intent, Outcome
    from bench.audit_bench import MASTER, SIGNING, _store

    def intent(cid: str) -> Intent:
        return Intent(
            actor="bench", roles=("editor",), system="keycom", customer_id=cid,
            purpose="customer_service", request_id="new-subject", action="update",
            changed=("Email", "Note"), before={"Email": "a@example.org", "Note": "old"},
            after={"Email": "b@example.org", "Note": "new"},
            protected={"Email": "personal", "Note": "internal"}, policy_version="sha256:bench",
        )  # fmt: skip

    async with _store(store) as url:
        if url is None:
            raise SystemExit(f"{store} is not reachable")
        log = await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING)
        backend: Any = log._writer._committer._backend  # white-box: count the two ways
        ways = {"full": 0, "sent": 0}
        chain, append_if_head = backend.chain, backend.append_if_head

        def full(*args: Any, **kwargs: Any) -> Any:
            ways["full"] += 1
            return chain(*args, **kwargs)

        def sent(*args: Any, **kwargs: Any) -> Any:
            ways["sent"] += 1
            return append_if_head(*args, **kwargs)

        backend.chain, backend.append_if_head = full, sent
        applied = Outcome("applied", None, 200, 12.5)

        async def changes_of(queue: list[str]) -> None:
            while queue:
                cid = queue.pop()
                async with log.subject_lock("keycom", cid):
                    intent_id = await log.begin_queued(intent(cid))
                    await log.finish(intent_id, applied, durable=False)

        try:
            if customers == "known":
                warm = [f"k{n}" for n in range(_KNOWN)]
                await asyncio.gather(*(changes_of(warm) for _ in range(tasks)))
                queue = [f"k{n % _KNOWN}" for n in range(changes)]
            else:
                queue = [f"n{n}" for n in range(changes)]
            await log.settle()
            ways.update(full=0, sent=0)
            thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
            await asyncio.gather(*(changes_of(queue) for _ in range(tasks)))
            await log.settle()
            thread = time.thread_time() - thread
            process = time.process_time() - process
            wall = time.perf_counter() - wall
        finally:
            await log.close()
    return {
        "loop_us": 1e6 * thread / changes,
        "process_us": 1e6 * process / changes,
        "per_second": changes / wall,
        "full": ways["full"],
        "sent": ways["sent"],
        "load": os.getloadavg()[0],
    }


def _run(checkout: Path, args: argparse.Namespace) -> dict[str, float]:
    from bench.procs import child_on  # here: the child runs with another checkout's bench

    return child_on(checkout, __file__, "--store", args.store, "--changes", str(args.changes),
                    "--tasks", str(args.tasks), "--customers", args.customers)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, help="checkout B (after)")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=6000)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--customers", choices=("new", "known"), default="new")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        got = asyncio.run(_child(args.store, args.changes, args.tasks, args.customers))
        print(json.dumps(got))
        return 0
    if args.a is None or args.b is None:
        parser.error("--a and --b are required")
    from bench.procs import run_ab  # here: the child runs with another checkout's bench

    run_ab(args.a, args.b, args.rounds, lambda checkout: _run(checkout, args), lambda got: (
        f"event loop {got['loop_us']:6.1f} us/change, process {got['process_us']:6.1f} "
        f"us/change, {got['per_second']:6.0f} changes/s, batches full {got['full']:.0f}"
        f" sent {got['sent']:.0f}, load {got['load']:.2f}"
    ), {"loop_us": "event loop", "process_us": "process"})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
