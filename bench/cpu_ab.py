"""The gateway's CPU per change, two checkouts side by side, in short interleaved slices.

    python -m bench.cpu_ab --a DIR --b DIR [--system keycom] [--store sqlite] [--slices 8]
        [--seconds 3]

On a shared machine the load moves a whole bench run's figure by more than a change
worth a few percent. Here both gateways run at once, against the same emulators, each
from its own checkout (``PYTHONPATH=DIR``; the interpreter and its packages are this
one's), each with a fresh audit log (a SQLite file, or with ``--store postgres`` a
PostgreSQL database of its own) and the bench's configuration. wrk then loads
them in turn - A, B, A, B ... ``--slices`` times each, ``--seconds`` per slice, 32
connections (``bench/patch.lua``) - so that a change in the machine's load hits both
alike. Prints each slice's CPU per answer (user + system time of the server process, all
its threads, over the slice) and, per side, the median and the range; the last line is
the median ratio B/A of neighbouring slices. Not a test assertion.
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
    server,
)


def _gateway(stack: contextlib.ExitStack, checkout: Path, folder: Path, urls: dict[str, str],
             label: str, store: str) -> tuple[str, int]:
    port = free_port()
    audit_url = stack.enter_context(audit_store(store, folder))
    config = gateway_config(folder, port=port, audit_url=audit_url, urls=urls,
                            conflict_check=True)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run([cli(), "db", "upgrade", "--config", str(config)],  # noqa: S603
                   env=env, check=True, capture_output=True, cwd=checkout)
    proc = stack.enter_context(server(
        [cli(), "serve", "--config", str(config), "--workers", "1"], port, label,
        folder / f"{label}.log", env=env,
    ))
    return f"http://127.0.0.1:{port}", proc.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    parser.add_argument("--system", choices=tuple(WORKLOADS), default="keycom")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args(argv)
    workload = WORKLOADS[args.system]
    figures: dict[str, list[float]] = {"A": [], "B": []}
    rates: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        ids_file = folder / "ids.txt"
        ids_file.write_text("\n".join(map(str, eligible_customers(workload).ids)) + "\n")
        emulators = stack.enter_context(Emulators(folder / "emulators.log"))
        sides = {
            "A": _gateway(stack, args.a.resolve(), folder, emulators.urls, "A", args.store),
            "B": _gateway(stack, args.b.resolve(), folder, emulators.urls, "B", args.store),
        }
        for url, _ in sides.values():  # warm-up
            run_wrk(url, workload, ids_file, stamp=1, connections=32, seconds=2)
        for number in range(args.slices):
            for name, (url, pid) in sides.items():
                before = cpu_seconds(pid)
                run = run_wrk(url, workload, ids_file, stamp=2, connections=32,
                              seconds=args.seconds)
                used = cpu_seconds(pid) - before
                ms = 1000.0 * used / max(1, run["requests"])
                figures[name].append(ms)
                rates[name].append(run["rps"])
                print(f"slice {number + 1} {name}: {ms:.3f} ms CPU/answer, "
                      f"{run['rps']:.0f} req/s, {run['statuses']}", flush=True)
    for name, values in figures.items():
        print(f"{name}: median {statistics.median(values):.3f} ms "
              f"(range {min(values):.3f}-{max(values):.3f}), "
              f"{statistics.median(rates[name]):.0f} req/s")
    ratios = [b / a for a, b in zip(figures["A"], figures["B"], strict=True)]
    print(f"B/A median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
