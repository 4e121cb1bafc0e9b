"""The SQLite writer thread's CPU per change, two checkouts in turn.

    python -m bench.writer_thread_cpu --a DIR --b DIR [--rounds 4] [--changes 6000]
        [--tasks 64]

As ``bench.append_cpu`` (a fresh process and SQLite file per run, ``PYTHONPATH=DIR``,
runs alternating A, B, A, B ...), with the gateway's pattern of appends: ``begin`` (durable)
then ``finish(..., durable=False)``, on ``bench.audit_bench``'s subjects (their keys cached
after the warm-up: the batches go the sent way, ``append_if_head``). Printed per run: CPU
per change of the event loop's thread, of SQLite's writer thread (``audit-sqlite-w``, from
``/proc/self/task``) and of the process, and the entries per committed batch. The last
lines are the medians and the median ratios B/A. Not a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from pathlib import Path

_WARM_UP = 20  # changes per task before the measured ones
_KEYS = ("loop_us", "writer_us", "process_us")


def _thread_cpu(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _child(changes: int, tasks: int) -> dict[str, float]:
    from audit import AuditLog, Outcome
    from bench.audit_bench import MASTER, SIGNING, _intent, _store

    batches: list[int] = []
    async with _store("sqlite") as url:
        assert url is not None
        log = await AuditLog.open(
            url, master_key=MASTER, signing_key=SIGNING,
            on_batch=lambda size, _seconds: batches.append(size),
        )  # fmt: skip
        applied = Outcome("applied", None, 200, 12.5)
        (writer,) = [t for t in threading.enumerate() if t.name == "audit-sqlite-w"]
        assert writer.native_id is not None

        async def change(task: int, count: int, first: int) -> None:
            for n in range(first, first + count):
                intent_id = await log.begin(_intent(task * 1_000_000 + n))
                await log.finish(intent_id, applied, durable=False)

        try:
            await asyncio.gather(*(change(t, _WARM_UP, 0) for t in range(tasks)))
            per_task = changes // tasks
            batches.clear()
            loop, proc = time.thread_time(), time.process_time()
            wcpu, wall = _thread_cpu(writer.native_id), time.perf_counter()
            await asyncio.gather(*(change(t, per_task, _WARM_UP) for t in range(tasks)))
            loop, proc = time.thread_time() - loop, time.process_time() - proc
            wcpu, wall = _thread_cpu(writer.native_id) - wcpu, time.perf_counter() - wall
        finally:
            await log.close()
    done = per_task * tasks
    return {
        "loop_us": 1e6 * loop / done, "writer_us": 1e6 * wcpu / done,
        "process_us": 1e6 * proc / done, "per_second": done / wall,
        "batch": sum(batches) / max(1, len(batches)), "load": os.getloadavg()[0],
    }  # fmt: skip


def _run(checkout: Path, args: argparse.Namespace) -> dict[str, float]:
    from bench.procs import child_on  # here: the child runs with another checkout's bench

    return child_on(checkout, __file__, "--changes", str(args.changes), "--tasks", str(args.tasks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, help="checkout B (after)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--changes", type=int, default=6000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.changes, args.tasks))))
        return 0
    if args.a is None or args.b is None:
        parser.error("--a and --b are required")
    from bench.procs import run_ab  # here: the child runs with another checkout's bench

    run_ab(args.a, args.b, args.rounds, lambda checkout: _run(checkout, args), lambda got: (
        f"loop {got['loop_us']:5.1f}, writer {got['writer_us']:5.1f}, process "
        f"{got['process_us']:5.1f} us/change; {got['batch']:4.1f} entries/batch, "
        f"{got['per_second']:5.0f} changes/s, load {got['load']:.2f}"
    ), {key: key for key in _KEYS})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
