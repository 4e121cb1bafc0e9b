"""The floor of the gateway's added latency: one durable commit of each audit store, one
at a time, on this machine.

A change is forwarded only once its intent is durable (docs/audit.md): on SQLite a
``synchronous=FULL`` commit in WAL mode (a sync of the WAL file), on PostgreSQL a commit
with ``synchronous_commit`` on (a flush of the server's WAL). Neither can be skipped, so
one request at a time the gateway adds at least one such commit to the reference proxy's
latency. This measures it apart from the gateway: ``count`` commits of one row the size
of an intent entry, in a fresh SQLite file in ``folder`` and in a scratch table of a
fresh PostgreSQL database (created and dropped here).

    python -m bench.sync_floor [--stores sqlite,postgres] [--count 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import audit_store

#: about the size of an intent entry's canonical JSON
ROW = "x" * 1500


def _summary(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e3, 3)

    return {"commits": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99)}


def sqlite_floor(folder: Path, count: int) -> dict[str, Any]:
    """``count`` commits of one row, WAL and ``synchronous=FULL``, as the audit store."""
    con = sqlite3.connect(folder / "sync-floor.db", isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE entry (seq INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        seconds = []
        for _ in range(count):
            started = time.perf_counter()
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO entry (text) VALUES (?)", (ROW,))
            con.execute("COMMIT")
            seconds.append(time.perf_counter() - started)
    finally:
        con.close()
    return _summary(seconds)


def postgres_floor(count: int) -> dict[str, Any]:
    """``count`` commits of one row in a database of its own, ``synchronous_commit`` on."""
    import asyncpg

    async def run(url: str) -> list[float]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute("SET synchronous_commit = on")
            await conn.execute("CREATE TABLE entry (seq BIGSERIAL PRIMARY KEY, text TEXT)")
            seconds = []
            for _ in range(count):
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("INSERT INTO entry (text) VALUES ($1)", ROW)
                seconds.append(time.perf_counter() - started)
            return seconds
        finally:
            await conn.close()

    with tempfile.TemporaryDirectory() as tmp, audit_store("postgres", Path(tmp)) as url:
        return _summary(asyncio.run(run(url)))


def measure(stores: list[str], folder: Path, count: int = 200) -> dict[str, Any]:
    """Per store: commits, p50 and p99 of one durable commit in milliseconds."""
    floors: dict[str, Any] = {}
    for store in stores:
        if store == "sqlite":
            floors[store] = sqlite_floor(folder, count)
        elif store == "postgres":
            floors[store] = postgres_floor(count)
        else:
            raise ValueError(f"unknown store {store!r}")
    return floors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sync-floor-") as tmp:
        floors = measure(args.stores.split(","), Path(tmp), args.count)
    print(json.dumps(floors, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
