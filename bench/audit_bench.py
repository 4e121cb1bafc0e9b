"""Audit log throughput: durable appends per second on SQLite and PostgreSQL with 1, 16
and 256 concurrent writers, and verification speed (entries per second).

Run: ``python -m bench.audit_bench [--seconds 3]`` (about 30 s in all). Every counted
append has returned from ``AuditLog.record``, i.e. is committed (SQLite WAL with
``synchronous=FULL``; PostgreSQL with ``synchronous_commit=on``). Each entry seals two
personal values (AES-256-GCM) and carries one clear value, as a typical contact edit.
PostgreSQL is the server at 127.0.0.1:5432; a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
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
MASTER, SIGNING = os.urandom(32), os.urandom(32)
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


async def _appends(url: str, writers: int, seconds: float) -> tuple[float, float, float]:
    """(appends per second, mean group-commit size, appends per CPU-second of this
    process) for ``writers`` concurrent callers."""
    batches: list[int] = []
    log = await AuditLog.open(
        url, master_key=MASTER, signing_key=SIGNING,
        on_batch=lambda size, _s: batches.append(size),
    )  # fmt: skip
    outcome = Outcome("applied", upstream_status=200, upstream_latency_ms=3.2)
    try:
        await asyncio.gather(*(log.record(_intent(n), outcome) for n in range(SUBJECTS)))
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
    asyncio.run(main(parser.parse_args().seconds))
    sys.exit(0)
