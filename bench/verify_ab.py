"""Verify, two checkouts side by side, on one store: entries/s and CPU per entry.

    python -m bench.verify_ab --a DIR --b DIR [--store postgres] [--entries 120000]
        [--rounds 5] [--url URL --keep]

One store is filled once (``--entries`` contact edits through ``AuditLog.record``, 256
writers, this checkout's code; or ``--url`` a store filled earlier with ``--keep``), then
``verify()`` runs over it from A and from B in turn, A B B A A B ..., each in a fresh
process of that checkout (its own interpreter and packages, ``cwd`` the checkout). Verify
only reads, so both sides check exactly the same rows. Per run: entries/s (wall, the
``verify()`` call alone), entries per CPU-second of the verifying process (user + system,
all threads, and any process it started and waited for: verify's helpers) and, on
PostgreSQL, the server's CPU per entry (``/proc`` of every backend connected to the
store's database, from its start, polled every 20 ms from this process while the run
lasts: a backend that ends between two polls loses at most its last 20 ms; the opening
of the log is included). Then the medians per side and of the B/A ratios of neighbouring
runs. The load average is printed with every run: the machine is shared. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.procs import PG_ADMIN, cpu_seconds

#: fixed bench keys (not secrets): a store kept with ``--keep`` verifies in a later run
MASTER = hashlib.sha256(b"bench.verify_ab master").digest()
SIGNING = hashlib.sha256(b"bench.verify_ab signing").digest()
#: one verify run in a process of the checkout under test (``cwd``: its ``audit``)
_ONE_RUN = r"""
import asyncio, json, os, resource, sys, time
from audit import AuditLog

async def main(url, master, signing):
    log = await AuditLog.open(url, master_key=master, signing_key=signing)
    try:
        load = os.getloadavg()[0]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started, cpu = time.perf_counter(), time.process_time()
        report = await log.verify()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    finally:
        await log.close()
    print(json.dumps({"ok": report.ok, "reason": report.reason, "entries": report.entries,
                      "seconds": elapsed, "cpu": cpu, "load": load}))

asyncio.run(main(sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])))
"""


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fill(url: str, entries: int) -> None:
    """``entries`` durable contact edits (``bench.audit_bench``'s), 256 writers."""
    from audit import AuditLog, Outcome, upgrade
    from bench.audit_bench import _intent

    await upgrade(url)
    outcome = Outcome("applied", upstream_status=200, upstream_latency_ms=3.2)
    log = await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING)
    try:
        numbers = iter(range(entries))

        async def writer() -> None:
            for n in numbers:
                await log.record(_intent(n), outcome)

        await asyncio.gather(*(writer() for _ in range(256)))
    finally:
        await log.close()


class _BackendCpu:
    """The CPU of the server backends connected to one database while it runs: polled."""

    def __init__(self, url: str) -> None:
        self._name = _db_name(url)
        self._cpu: dict[int, float] = {}
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._poll()), daemon=True)

    async def _poll(self) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            for _ in range(250):  # the previous run's backends gone (5 s at most)
                if not await self._pids(conn):
                    break
                await asyncio.sleep(0.02)
            self._ready.set()
            while True:  # every backend that comes counts from its start
                for pid in await self._pids(conn):
                    self._cpu[pid] = cpu_seconds(pid)
                if self._stop.is_set():
                    return
                await asyncio.sleep(0.02)
        finally:
            self._ready.set()
            await conn.close()

    async def _pids(self, conn: Any) -> list[int]:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self._name)
        return [int(row[0]) for row in rows]

    def __enter__(self) -> _BackendCpu:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self._cpu.values())


def _one(checkout: Path, url: str, postgres: bool) -> dict[str, Any]:
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python), "-c", _ONE_RUN, url, MASTER.hex(), SIGNING.hex()]
    if postgres:
        with _BackendCpu(url) as server:
            done = subprocess.run(command, cwd=checkout, capture_output=True, text=True)  # noqa: S603
        server_seconds: float | None = server.seconds
    else:
        done = subprocess.run(command, cwd=checkout, capture_output=True, text=True)  # noqa: S603
        server_seconds = None
    if done.returncode != 0:
        raise SystemExit(f"verify run in {checkout} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["ok"]:
        raise SystemExit(f"verify in {checkout} says the chain is broken: {result['reason']}")
    result["server"] = server_seconds
    return result


def _row(side: str, r: dict[str, Any]) -> str:
    server = (
        f" | {r['server'] / r['entries'] * 1e6:.2f}" if r["server"] is not None else " | -"
    )
    return (
        f"| {side} | {r['entries']:,} | {r['entries'] / r['seconds']:,.0f}"
        f" | {r['entries'] / r['cpu']:,.0f}{server} | {r['load']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="checkout A (with its .venv)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (with its .venv)")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--entries", type=int, default=120_000, help="entries to write first")
    parser.add_argument("--rounds", type=int, default=5, help="runs per side")
    parser.add_argument("--url", help="verify this store (filled with --keep before)")
    parser.add_argument("--keep", action="store_true", help="do not drop/delete the store")
    args = parser.parse_args()
    postgres = args.store == "postgres"
    url = args.url
    if url is None:
        if postgres:
            name = f"verify_ab_{uuid.uuid4().hex[:10]}"
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        else:
            folder = tempfile.mkdtemp(prefix="verify-ab-")
            url = f"sqlite+aiosqlite:///{folder}/audit.db"
        started = time.perf_counter()
        asyncio.run(_fill(url, args.entries))
        print(f"# filled {url} with {args.entries:,} entries in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    try:
        print("| side | entries | entries/s | per CPU-second | server µs/entry | load |")
        print("|---|---:|---:|---:|---:|---|", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
        for n in range(args.rounds):
            for side in ("A", "B") if n % 2 == 0 else ("B", "A"):
                result = _one(args.a if side == "A" else args.b, url, postgres)
                runs[side].append(result)
                print(_row(side, result), flush=True)
        _summary(runs, postgres)
    finally:
        if not args.keep and args.url is None:
            if postgres:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{_db_name(url)}" WITH (FORCE)'))
            else:
                shutil.rmtree(Path(url.split("///", 1)[1]).parent, ignore_errors=True)
        elif args.keep:
            print(f"# kept: --url {url}")


def _summary(runs: dict[str, list[dict[str, Any]]], postgres: bool) -> None:
    def rates(side: str, key: str) -> list[float]:
        if key == "server":
            return [r["server"] / r["entries"] * 1e6 for r in runs[side]]
        return [r["entries"] / r[key] for r in runs[side]]

    print()
    for key, label in (("seconds", "entries/s"), ("cpu", "entries per CPU-second"),
                       ("server", "server µs CPU per entry")):  # fmt: skip
        if key == "server" and not postgres:
            continue
        a, b = rates("A", key), rates("B", key)
        ratios = [y / x for x, y in zip(a, b, strict=False)]
        print(f"{label}: A median {statistics.median(a):,.2f} ({min(a):,.2f}-{max(a):,.2f}),"
              f" B median {statistics.median(b):,.2f} ({min(b):,.2f}-{max(b):,.2f});"
              f" B/A median {statistics.median(ratios):.3f}"
              f" ({min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    print(f"load average now: {os.getloadavg()}")


if __name__ == "__main__":
    main()
