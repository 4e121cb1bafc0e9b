"""Audit log throughput: durable appends per second on SQLite and PostgreSQL with 1, 16
and 256 concurrent writers, and verification speed (entries per second).

Run: ``python -m bench.audit_bench [--seconds 3]`` (about 35 s in all). Every counted
append has returned from ``AuditLog.record``, i.e. is committed (SQLite WAL with
``synchronous=FULL``; PostgreSQL with ``synchronous_commit=on``). Each entry seals two
personal values (AES-256-GCM) and carries one clear value, as a typical contact edit.
PostgreSQL is the server at 127.0.0.1:5432; a scratch database is created and dropped.
Then, with 256 writers, what the gateway writes per change - an intent, then its
outcome - with a durable outcome and with ``finish(durable=False)``. A last run per store
has two processes (replicas) append to one chain at once.

Every rate is given per wall-clock second and per CPU-second of this process (user +
system, all its threads; the two-process row: of both processes together), with the load
average around the run: the machine is shared, and CPU time is what other load changes
least. ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from audit import AuditLog, Intent, Outcome, upgrade

WRITERS = (1, 16, 256)
SUBJECTS = 200
# Shared with the worker processes of the two-process run through the environment.
MASTER = base64.b64decode(os.environ.get("AUDIT_BENCH_MASTER", "")) or os.urandom(32)
SIGNING = base64.b64decode(os.environ.get("AUDIT_BENCH_SIGNING", "")) or os.urandom(32)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
STORE_NAMES = {"sqlite": "SQLite (WAL, synchronous=FULL)", "postgres": "PostgreSQL 127.0.0.1"}
#: the gateway's pattern, intent then outcome, as extra runs with this many writers
CHANGE_WRITERS = 256
PATTERNS = {
    "change": "begin + finish, both durable",
    "change-lazy": "begin + finish(durable=False)",
}


def _intent(n: int) -> Intent:
    return Intent(
        actor="bench", roles=("editor",), system="billbee", customer_id=str(100000 + n % SUBJECTS),
        purpose="customer_service", request_id=f"bench-{n}", action="update",
        changed=("Email", "Phone", "Note"),
        before={"Email": "old@example.org", "Phone": "+49 30 1234567", "Note": "a"},
        after={"Email": "new@example.org", "Phone": "+49 30 7654321", "Note": "b"},
        protected={"Email": "personal", "Phone": "personal", "Note": "internal"},
        policy_version="sha256:bench",
    )  # fmt: skip


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name
    (Linux: /proc/self/task; empty elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds[thread.name] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def _thread_share(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each thread's share of the CPU the process's threads used between two readings."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    total = sum(used.values()) or 1.0
    return {name: round(value / total, 3) for name, value in sorted(used.items())}


async def _appends(
    url: str,
    writers: int,
    seconds: float,
    start_at: float | None = None,
    pattern: str = "record",
) -> dict[str, Any]:
    """Appends by ``writers`` concurrent callers for ``seconds``: per second, per
    CPU-second of this process, and the mean group-commit size; from ``start_at`` (epoch)
    if given. ``pattern``: ``record`` (one durable entry per call), ``change`` (what the
    gateway writes per change: ``begin``, then ``finish``, both durable) or
    ``change-lazy`` (the same with ``finish(durable=False)``); rates count entries."""
    batches: list[int] = []
    log = await AuditLog.open(
        url, master_key=MASTER, signing_key=SIGNING,
        on_batch=lambda size, _s: batches.append(size),
    )  # fmt: skip
    outcome = Outcome("applied", upstream_status=200, upstream_latency_ms=3.2)
    try:
        await asyncio.gather(*(log.record(_intent(n), outcome) for n in range(SUBJECTS)))
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        batches.clear()
        counts = [0] * writers
        deadline = time.perf_counter() + seconds

        async def writer(index: int) -> None:
            n = index
            while time.perf_counter() < deadline:
                if pattern == "record":
                    await log.record(_intent(n), outcome)
                    counts[index] += 1
                else:
                    intent_id = await log.begin(_intent(n))
                    await log.finish(intent_id, outcome, durable=pattern == "change")
                    counts[index] += 2
                n += writers

        load, threads = _load(), _thread_cpu()
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        threads = _thread_share(threads, _thread_cpu())
    finally:
        await log.close()
    return {
        "writers": writers,
        "pattern": pattern,
        "appends": sum(counts),
        "per_second": sum(counts) / elapsed,
        "per_cpu_second": sum(counts) / max(cpu, 1e-9),
        "mean_batch": statistics.fmean(batches) if batches else 0.0,
        "thread_cpu_share": threads,
        "load_before": load,
        "load_after": _load(),
    }


def _cpu_with_children() -> float:
    """CPU seconds of this process and of the child processes it waited for (verify's
    helper processes on PostgreSQL, audit.verify)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def _verify(url: str) -> dict[str, Any]:
    log = await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING)
    try:
        load = _load()
        started, cpu = time.perf_counter(), _cpu_with_children()
        report = await log.verify()
        elapsed, cpu = time.perf_counter() - started, _cpu_with_children() - cpu
    finally:
        await log.close()
    if not report.ok:
        raise SystemExit(f"verify failed: {report.reason}")
    return {
        "entries": report.entries,
        "per_second": report.entries / elapsed,
        "per_cpu_second": report.entries / max(cpu, 1e-9),
        "load_before": load,
        "load_after": _load(),
    }


@asynccontextmanager
async def _store(kind: str) -> AsyncIterator[str | None]:
    """A fresh, migrated store of ``kind``: a SQLite file, or a scratch PostgreSQL
    database (created, and dropped after); None when PostgreSQL is not reachable."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
            await upgrade(url)
            yield url
        return
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        yield None
        return
    name = f"audit_bench_{uuid.uuid4().hex[:10]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        await upgrade(url)
        yield url
    finally:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _two_processes(url: str, writers: int, seconds: float) -> tuple[float, float]:
    """Two gateway processes ("replicas") appending to one store: (appends per second,
    appends per CPU-second of the two processes together)."""
    env = {
        **os.environ,
        "AUDIT_BENCH_MASTER": base64.b64encode(MASTER).decode(),
        "AUDIT_BENCH_SIGNING": base64.b64encode(SIGNING).decode(),
    }
    start_at = time.time() + 3.0  # both warmed up and waiting by then
    command = [
        sys.executable, "-m", "bench.audit_bench", "--worker", url,
        "--writers", str(writers), "--seconds", str(seconds), "--start-at", str(start_at),
    ]  # fmt: skip
    procs = [
        await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    rates, cpu = [], []
    for proc in procs:
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise SystemExit("a bench worker failed")
        per_second, per_cpu_second = map(float, out.decode().split()[:2])
        rates.append(per_second)
        cpu.append(per_second / max(per_cpu_second, 1e-9))  # CPU-seconds per second
    return sum(rates), sum(rates) / max(sum(cpu), 1e-9)


async def _worker(url: str, writers: int, seconds: float, start_at: float) -> None:
    result = await _appends(url, writers, seconds, start_at)
    print(f"{result['per_second']:.1f} {result['per_cpu_second']:.1f}")


async def run(
    stores: list[str],
    writers: list[int],
    seconds: float,
    replicas: bool,
    verify: bool,
    changes: tuple[str, ...] = tuple(PATTERNS),
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seconds": seconds,
        "load_before": _load(),
        "appends": [],
        "replicas": [],
        "verify": [],
    }
    print(f"# audit log bench ({platform.python_version()}, {os.cpu_count()} cores, "
          f"{seconds:g} s per run), load average before: {results['load_before']}\n")  # fmt: skip
    print("| store | writers | appends/s (durable) | appends per CPU-second | mean batch | load |")
    print("|---|---:|---:|---:|---:|---|")
    for kind in stores:
        async with _store(kind) as url:
            if url is None:
                print(f"| {STORE_NAMES[kind]} | - | not reachable: skipped | | | |")
                continue
            runs = [(count, "record") for count in writers]
            runs += [(CHANGE_WRITERS, pattern) for pattern in changes]
            for count, pattern in runs:
                row = {"store": kind, **await _appends(url, count, seconds, pattern=pattern)}
                results["appends"].append(row)
                label = "" if pattern == "record" else f" ({PATTERNS[pattern]})"
                print(f"| {STORE_NAMES[kind]}{label} | {count} | {row['per_second']:,.0f}"
                      f" | {row['per_cpu_second']:,.0f} | {row['mean_batch']:.1f}"
                      f" | {row['load_before'][0]:.2f} |")  # fmt: skip
            if replicas:
                rate, per_cpu = await _two_processes(url, 256, seconds)
                results["replicas"].append(
                    {"store": kind, "per_second": rate, "per_cpu_second": per_cpu}
                )
                print(f"| {STORE_NAMES[kind]}, two processes on one store | 2 × 256"
                      f" | {rate:,.0f} | {per_cpu:,.0f} | | |")  # fmt: skip
            if verify:
                results["verify"].append({"store": kind, **await _verify(url)})
    if results["verify"]:
        print("\n| store | entries verified | entries/s | entries per CPU-second | load |")
        print("|---|---:|---:|---:|---|")
        for row in results["verify"]:
            print(f"| {STORE_NAMES[row['store']]} | {row['entries']:,} | {row['per_second']:,.0f}"
                  f" | {row['per_cpu_second']:,.0f} | {row['load_before'][0]:.2f} |")  # fmt: skip
    results["load_after"] = _load()
    print(f"\nload average after: {results['load_after']}")
    return results


# What the event loop's thread does per append, from a py-spy profile of an append run:
# a sample counts for the first category one of whose frames it holds.
PROFILE_CATEGORIES = (
    ("seal: AES-GCM per side, nonce, associated data, base64", ("seal_into (audit/batch.py",)),
    ("canonical JSON of the body (orjson and its guard)", ("canonical (audit/chain.py",)),
    ("storable check", ("check_storable",)),
    ("split the values, encode the sealed ones", ("split_values",)),
    ("body dict, time, entry id", ("intent_body", "uuid7")),
    ("intent and outcome checks", ("check_intent", "check_outcome")),
    ("writer: chain (hashes, rows)", ("chain (audit/batch.py",)),
    ("writer: answer the callers", ("resolve (audit/batch.py", "fail (audit/batch.py")),
    ("writer: send, settle, driver calls",
     ("Committer.", "append_if_head", "_on_writer", "asyncpg/", "ChainWriter._write")),
    ("bench: building Intent objects", ("_intent (bench",)),
    ("record, enqueue, await (coroutines, futures, queue)", ("AuditLog.record",
        "AuditLog._append", "ChainWriter.enqueue", "ChainWriter.append", "writer (bench")),
    ("event loop: waiting in select", ("select (selectors.py",)),
    ("event loop: the rest", ("_run_once",)),
)


def profile_summary(path: Path) -> list[tuple[str, float]]:
    """Shares of the event loop's samples by category, from ``py-spy record -f raw``."""
    counts = dict.fromkeys((name for name, _ in PROFILE_CATEGORIES), 0)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if not any("_run_once" in frame for frame in frames):
            continue  # another thread, or start-up
        total += int(number)
        for name, marks in PROFILE_CATEGORIES:
            if any(mark in frame for frame in frames for mark in marks):
                counts[name] += int(number)
                break
    return [(name, count / max(total, 1)) for name, count in counts.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each append run")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--writers", default=",".join(map(str, WRITERS)),
                        help="concurrent writers per run, comma-separated")  # fmt: skip
    parser.add_argument("--no-replicas", action="store_true", help="skip the two-process run")
    parser.add_argument("--no-verify", action="store_true", help="skip the verify runs")
    parser.add_argument("--no-changes", action="store_true",
                        help="skip the begin + finish runs")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--profile-summary", type=Path, metavar="RAW",
                        help="summarise a py-spy raw profile (of an append run), and stop")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_summary:
        for name, share in profile_summary(args.profile_summary):
            print(f"{share:6.1%}  {name}")
        return
    if args.worker:
        asyncio.run(_worker(args.worker, int(args.writers), args.seconds, args.start_at))
        return
    stores = [s for s in args.stores.split(",") if s]
    if unknown := set(stores) - set(STORE_NAMES):
        parser.error(f"unknown store(s): {sorted(unknown)}")
    writers = [int(w) for w in args.writers.split(",") if w]
    changes = () if args.no_changes else tuple(PATTERNS)
    results = asyncio.run(
        run(stores, writers, args.seconds, not args.no_replicas, not args.no_verify, changes)
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
    sys.exit(0)
