"""The gateway's CPU per change, two checkouts side by side, in short interleaved slices.

    python -m bench.cpu_ab --a DIR --b DIR [--system keycom] [--store sqlite] [--slices 8]
        [--seconds 3] [--settle 1] [--workers N] [--b-workers N]

On a shared machine the load moves a whole bench run's figure by more than a change
worth a few percent. Here both gateways run at once, against the same emulators, each
from its own checkout (``PYTHONPATH=DIR``; the interpreter and its packages are this
one's), each with a fresh audit log (a SQLite file, or with ``--store postgres`` a
PostgreSQL database of its own) and the bench's configuration. wrk then loads
them in turn - A, B, A, B ... ``--slices`` times each, ``--seconds`` per slice, 32
connections (``bench/patch.lua``) - so that a change in the machine's load hits both
alike. Prints each slice's CPU per answer (user + system time of the server process, all
its threads, over the slice) and, per side, the median and the range; the last line is
the median ratio B/A of neighbouring slices. The order alternates - A B, B A, A B ... - and
the first ``--settle`` rounds (default 1) are run but not counted: with A always first, A's
first slice read high in every one of 24 runs (i11-edge), a bias of about 2 % in B's
favour. With ``--store postgres`` the same for the
CPU of the server backends connected to each side's database (``/proc`` of each backend
listed in ``pg_stat_activity``, before and after the slice; the server must run on this
machine). ``--workers``: each side's ``serve --workers`` (default 1; the CPU is then the
whole process tree's); ``--b-workers``: B's, when it differs (the same checkout twice
compares 1 worker with 2). Not a test assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.load import WORKLOADS, eligible_customers, run_wrk
from bench.procs import (
    Emulators,
    audit_store,
    cli,
    cpu_seconds,
    free_port,
    gateway_config,
    pg_backend_cpu,
    server,
)


def _gateway(stack: contextlib.ExitStack, checkout: Path, folder: Path, urls: dict[str, str],
             label: str, store: str, workers: int) -> tuple[str, int, str | None]:
    port = free_port()
    audit_url = stack.enter_context(audit_store(store, folder))
    config = gateway_config(folder, port=port, audit_url=audit_url, urls=urls,
                            conflict_check=True)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run([cli(), "db", "upgrade", "--config", str(config)],  # noqa: S603
                   env=env, check=True, capture_output=True, cwd=checkout)
    proc = stack.enter_context(server(
        [cli(), "serve", "--config", str(config), "--workers", str(workers)], port, label,
        folder / f"{label}.log", env=env, listeners=workers,
    ))
    return f"http://127.0.0.1:{port}", proc.pid, audit_url if store == "postgres" else None



def rounds(slices: int, settle: int) -> list[tuple[int, bool, tuple[str, str]]]:
    """(round number from 1, counted?, the sides in the order they run) for every round:
    ``settle`` uncounted rounds first, then ``slices`` counted ones; the order alternates
    from one round to the next (A B, B A, ...) so that neither side always runs first."""
    return [(number + 1, number >= settle, ("A", "B") if number % 2 == 0 else ("B", "A"))
            for number in range(settle + slices)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    parser.add_argument("--system", choices=tuple(WORKLOADS), default="keycom")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--settle", type=int, default=1,
                        help="rounds run first and not counted (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers of each side")
    parser.add_argument("--b-workers", type=int, default=None, help="B's, if not --workers")
    args = parser.parse_args(argv)
    b_workers = args.workers if args.b_workers is None else args.b_workers
    workload = WORKLOADS[args.system]
    figures: dict[str, list[float]] = {"A": [], "B": []}
    server: dict[str, list[float]] = {"A": [], "B": []}  # PostgreSQL backends' CPU
    rates: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        ids_file = folder / "ids.txt"
        ids_file.write_text("\n".join(map(str, eligible_customers(workload).ids)) + "\n")
        emulators = stack.enter_context(Emulators(folder / "emulators.log"))
        sides = {
            "A": _gateway(stack, args.a.resolve(), folder, emulators.urls, "A", args.store,
                          args.workers),
            "B": _gateway(stack, args.b.resolve(), folder, emulators.urls, "B", args.store,
                          b_workers),
        }
        for url, _, _ in sides.values():  # warm-up
            run_wrk(url, workload, ids_file, stamp=1, connections=32, seconds=2)
        for number, counted, order in rounds(args.slices, args.settle):
            for name in order:
                url, pid, db = sides[name]
                pg_before = pg_backend_cpu(db) if db else {}
                before = cpu_seconds(pid)
                run = run_wrk(url, workload, ids_file, stamp=2, connections=32,
                              seconds=args.seconds)
                used = cpu_seconds(pid) - before
                answers = max(1, run["requests"])
                ms = 1000.0 * used / answers
                if counted:
                    figures[name].append(ms)
                    rates[name].append(run["rps"])
                tag = "" if counted else " (settling, not counted)"
                line = f"slice {number} {name}{tag}: {ms:.3f} ms CPU/answer"
                if db:  # a backend that appeared meanwhile counts from its start
                    pg_after = pg_backend_cpu(db)
                    pg = sum(t - pg_before.get(p, 0.0) for p, t in pg_after.items())
                    if counted:
                        server[name].append(1000.0 * pg / answers)
                    line += f", PostgreSQL {1000.0 * pg / answers:.3f} ms CPU/answer"
                print(f"{line}, {run['rps']:.0f} req/s, {run['statuses']}", flush=True)
    for kind, values_of in (("", figures), (" PostgreSQL", server)):
        if not values_of["A"]:
            continue
        for name, values in values_of.items():
            rate = "" if kind else f", {statistics.median(rates[name]):.0f} req/s"
            print(f"{name}{kind}: median {statistics.median(values):.3f} ms "
                  f"(range {min(values):.3f}-{max(values):.3f}){rate}")
        ratios = [b / a for a, b in zip(values_of["A"], values_of["B"], strict=True) if a]
        print(f"B/A{kind} median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
