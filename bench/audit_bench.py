"""Audit log throughput: durable appends per second on SQLite and PostgreSQL with 1, 16
and 256 concurrent writers, and verification speed (entries per second).

Run: ``python -m bench.audit_bench [--seconds 3]`` (about 35 s in all). Every counted
append has returned from ``AuditLog.record``, i.e. is committed (SQLite WAL with
``synchronous=FULL``; PostgreSQL with ``synchronous_commit=on``). Each entry seals two
personal values (AES-256-GCM) and carries one clear value, as a typical contact edit.
PostgreSQL is the server at 127.0.0.1:5432; a scratch database is created and dropped.
A last run per store has two processes (replicas) append to one chain at once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from audit import AuditLog, Intent, Outcome, upgrade

WRITERS = (1, 16, 256)
SUBJECTS = 200
# Shared with the worker processes of the two-process run through the environment.
MASTER = base64.b64decode(os.environ.get("AUDIT_BENCH_MASTER", "")) or os.urandom(32)
SIGNING = base64.b64decode(os.environ.get("AUDIT_BENCH_SIGNING", "")) or os.urandom(32)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


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


async def _appends(
    url: str, writers: int, seconds: float, start_at: float | None = None
) -> tuple[float, float, float]:
    """(appends per second, mean group-commit size, appends per CPU-second of this
    process) for ``writers`` concurrent callers; from ``start_at`` (epoch) if given."""
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
                await log.record(_intent(n), outcome)
                counts[index] += 1
                n += writers

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await log.close()
    mean_batch = statistics.fmean(batches) if batches else 0.0
    return sum(counts) / elapsed, mean_batch, sum(counts) / max(cpu, 1e-9)


async def _verify(url: str) -> tuple[int, float]:
    log = await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING)
    try:
        started = time.perf_counter()
        report = await log.verify()
        elapsed = time.perf_counter() - started
    finally:
        await log.close()
    if not report.ok:
        raise SystemExit(f"verify failed: {report.reason}")
    return report.entries, report.entries / elapsed


async def _pg_database() -> tuple[str, str] | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    name = f"audit_bench_{uuid.uuid4().hex[:10]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _two_processes(url: str, writers: int, seconds: float) -> float:
    """Appends per second of two gateway processes ("replicas") on one store."""
    env = {
        **os.environ,
        "AUDIT_BENCH_MASTER": base64.b64encode(MASTER).decode(),
        "AUDIT_BENCH_SIGNING": base64.b64encode(SIGNING).decode(),
    }
    start_at = time.time() + 3.0  # both warmed up and waiting by then
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.audit_bench",
            "--worker",
            url,
            "--writers",
            str(writers),
            "--seconds",
            str(seconds),
            "--start-at",
            str(start_at),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    rates = []
    for proc in procs:
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise SystemExit("a bench worker failed")
        rates.append(float(out.decode().split()[0]))
    return sum(rates)


async def _worker(url: str, writers: int, seconds: float, start_at: float) -> None:
    rate, _, _ = await _appends(url, writers, seconds, start_at)
    print(f"{rate:.1f}")


async def main(seconds: float) -> None:
    print(f"# audit log bench ({platform.python_version()}, {os.cpu_count()} cores, "
          f"{seconds:g} s per run)\n")  # fmt: skip
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print("| store | writers | appends/s (durable) | mean batch | appends per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    verify_rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
        await upgrade(url)
        for writers in WRITERS:
            rate, batch, per_cpu = await _appends(url, writers, seconds)
            print(f"| SQLite (WAL, synchronous=FULL) | {writers} | {rate:,.0f} | {batch:.1f}"
                  f" | {per_cpu:,.0f} |")  # fmt: skip
        rate = await _two_processes(url, 256, seconds)
        print(f"| SQLite, two processes on one file | 2 × 256 | {rate:,.0f} | | |")
        verify_rows.append(("SQLite", *await _verify(url)))
    pg = await _pg_database()
    if pg is None:
        print("| PostgreSQL | - | not reachable at 127.0.0.1:5432: skipped | |")
    else:
        url, name = pg
        try:
            await upgrade(url)
            for writers in WRITERS:
                rate, batch, per_cpu = await _appends(url, writers, seconds)
                print(f"| PostgreSQL 127.0.0.1 | {writers} | {rate:,.0f} | {batch:.1f}"
                      f" | {per_cpu:,.0f} |")  # fmt: skip
            rate = await _two_processes(url, 256, seconds)
            print(f"| PostgreSQL, two replicas on one database | 2 × 256 | {rate:,.0f} | | |")
            verify_rows.append(("PostgreSQL", *await _verify(url)))
        finally:
            await _drop(name)
    print("\n| store | entries verified | entries/s |")
    print("|---|---:|---:|")
    for store, entries, rate in verify_rows:
        print(f"| {store} | {entries:,} | {rate:,.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each append run")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--writers", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(args.worker, args.writers, args.seconds, args.start_at))
    else:
        asyncio.run(main(args.seconds))
    sys.exit(0)
