"""One process against N, for the reference proxy and the gateway alike, in short
interleaved slices at the same load.

    python -m bench.workers_ab [--system keycom] [--store sqlite] [--workers 2]
        [--slices 5] [--seconds 4]

Starts the emulators, then four servers at once: the reference proxy with 1 and with N
processes (``bench/bare_proxy.py --processes``) and the gateway with 1 and with N workers
(``serve --workers``, each with a fresh audit store), as ``bench/gateway_bench.py`` does.
wrk then loads them in turn - ref 1, ref N, gateway 1, gateway N, ``--slices`` times,
``--seconds`` each, 32 connections - so that the machine's load hits all four alike (an
idle server costs next to nothing). Per slice and server: req/s, CPU per answer (the
process tree, ``/proc``), the share of it in threads other than the event loop's (the
audit writer's), the event loop thread's voluntary context switches per answer (how
often it found nothing to do and slept) and involuntary ones (preempted), and the
connections each process held mid-slice (how ``SO_REUSEPORT`` spread them). Then the
medians, and per slice round the ratios gateway / reference of req/s with 1 and with N
processes. Not a test assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import WORKLOADS, eligible_customers, run_wrk
from bench.procs import (
    Emulators,
    audit_store,
    cli,
    cpu_by_process,
    free_port,
    gateway_config,
    run_cli,
    server,
    socket_owners,
)

#: per thread (pid, tid): (CPU seconds, voluntary and involuntary context switches)
Threads = dict[tuple[int, int], tuple[float, int, int]]


def threads(root: int) -> Threads:
    """Every thread of ``root``'s process tree: its CPU and context switches."""
    tick = os.sysconf("SC_CLK_TCK")
    found: Threads = {}
    for pid in cpu_by_process(root):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    base = Path(f"/proc/{pid}/task/{tid}")
                    stat = (base / "stat").read_text().rsplit(")", 1)[1].split()
                    status = (base / "status").read_text()
                    slept = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
                    preempted = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
                    cpu = (int(stat[11]) + int(stat[12])) / tick
                    found[(pid, int(tid))] = (cpu, slept, preempted)
    return found


def connections(root: int, port: int) -> list[int]:
    """How many established connections on ``port`` each process of the tree holds."""
    owner = socket_owners(list(cpu_by_process(root)))
    held: Counter[int] = Counter()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if int(local.rsplit(":", 1)[1], 16) == port and state == "01" and inode in owner:
            held[owner[inode]] += 1
    return sorted(held.values())


def start(stack: contextlib.ExitStack, kind: str, count: int, store: str, folder: Path,
          urls: dict[str, str]) -> tuple[str, int, int]:  # fmt: skip
    """One server; its URL, port and pid."""
    port = free_port()
    if kind == "ref":
        argv = [sys.executable, "-m", "bench.bare_proxy", "--port", str(port), "--uvloop",
                "--billbee", urls["billbee"], "--keycom", urls["keycom"], "--reread",
                "--processes", str(count)]  # fmt: skip
    else:
        url = stack.enter_context(audit_store(store, folder))
        config = gateway_config(folder, port=port, audit_url=url, urls=urls, conflict_check=True)
        run_cli("db", "upgrade", "--config", str(config))
        argv = [cli(), "serve", "--config", str(config), "--workers", str(count)]
    log = folder / f"{kind}{count}.log"
    proc = stack.enter_context(server(argv, port, f"{kind} {count}", log, listeners=count))
    return f"http://127.0.0.1:{port}", port, proc.pid


def one_slice(url: str, port: int, pid: int, ids: Path, system: str, seconds: int,
              ) -> dict[str, Any]:  # fmt: skip
    held: list[int] = []
    watch = threading.Timer(seconds / 2, lambda: held.extend(connections(pid, port)))
    before = threads(pid)
    watch.start()
    run = run_wrk(url, WORKLOADS[system], ids, stamp=2, connections=32, seconds=seconds)
    watch.join()
    after = threads(pid)
    answers = max(1, run["requests"])
    zero = (0.0, 0, 0)
    used = {t: tuple(a - b for a, b in zip(now, before.get(t, zero), strict=True))
            for t, now in after.items()}  # fmt: skip
    loop = [u for (p, t), u in used.items() if p == t]  # each process's main thread
    return {
        "rps": run["rps"],
        "cpu_ms": 1000 * sum(u[0] for u in used.values()) / answers,
        "other_threads_ms": 1000 * sum(u[0] for (p, t), u in used.items() if p != t) / answers,
        "loop_sleeps": sum(u[1] for u in loop) / answers,
        "loop_preempted": sum(u[2] for u in loop) / answers,
        "connections": held,
        "statuses": run["statuses"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=tuple(WORKLOADS), default="keycom")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="N, compared with 1")
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args(argv)
    names = [("ref", 1), ("ref", args.workers), ("gateway", 1), ("gateway", args.workers)]
    rows: dict[str, list[dict[str, Any]]] = {f"{k} {n}": [] for k, n in names}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        ids = folder / "ids.txt"
        ids.write_text("\n".join(map(str, eligible_customers(WORKLOADS[args.system]).ids)))
        emulators = stack.enter_context(Emulators(folder / "emulators.log"))
        servers = {f"{k} {n}": start(stack, k, n, args.store, folder, emulators.urls)
                   for k, n in names}  # fmt: skip
        for url, _, _ in servers.values():  # warm-up
            run_wrk(url, WORKLOADS[args.system], ids, stamp=1, connections=32, seconds=2)
        for number in range(1, args.slices + 1):
            for name, (url, port, pid) in servers.items():
                load = os.getloadavg()[0]
                row = one_slice(url, port, pid, ids, args.system, args.seconds)
                rows[name].append(row)
                print(f"slice {number} {name:9}: {row['rps']:6.0f} req/s, "
                      f"{row['cpu_ms']:.3f} ms CPU/answer (other threads "
                      f"{row['other_threads_ms']:.3f}), loop sleeps/answer "
                      f"{row['loop_sleeps']:.2f}, preempted/answer {row['loop_preempted']:.2f}, "
                      f"connections {row['connections']}, "
                      f"{row['statuses']}, load {load:.2f}", flush=True)  # fmt: skip
    for name, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("rps", "cpu_ms", "other_threads_ms", "loop_sleeps",
                         "loop_preempted")}  # fmt: skip
        cpus = [r["cpu_ms"] for r in runs]
        print(f"{name:9}: {med['rps']:.0f} req/s, CPU/answer median {med['cpu_ms']:.3f} ms "
              f"({min(cpus):.3f}-{max(cpus):.3f}), other threads {med['other_threads_ms']:.3f} "
              f"ms, loop sleeps/answer {med['loop_sleeps']:.2f}, preempted/answer "
              f"{med['loop_preempted']:.2f}")  # fmt: skip
    for count in sorted({1, args.workers}):
        ratios = [g["rps"] / r["rps"] for r, g in
                  zip(rows[f"ref {count}"], rows[f"gateway {count}"], strict=True)]  # fmt: skip
        print(f"ratio gateway / reference, {count} process(es): median "
              f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
