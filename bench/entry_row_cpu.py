"""SQLite's CPU per ``audit_entry`` row with each checkout's schema, two checkouts in turn.

    python -m bench.entry_row_cpu --a DIR --b DIR [--rounds 5] [--changes 20000]
        [--batch 8] [--drop INDEX,...]

Fills one SQLite store with ``--changes`` changes (intent, then outcome; the intents of
``bench.audit_bench``, 64 tasks) through this checkout's ``AuditLog``, then per run
migrates a fresh file with a side's migrations (a child process, ``PYTHONPATH=DIR``,
runs alternating A, B, A, B ...) and inserts those rows into it in one thread:
``--batch`` rows per ``executemany`` and transaction, ``synchronous=OFF``, so that what
is left is SQLite's work per row - the B-tree inserts of the table and its indexes and
the generated columns' JSON extraction. ``--drop`` drops indexes after migrating (what
one costs). Printed: thread CPU per row per run, the medians and the B/A ratios. Not a
test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path


def fill(path: Path, changes: int, tasks: int = 64) -> None:
    """``changes`` changes of ``tasks`` writers into a new store at ``path``."""
    from audit import AuditLog, Outcome, upgrade
    from bench.audit_bench import MASTER, SIGNING, _intent

    async def run() -> None:
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        async with await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING) as log:
            applied = Outcome("applied", None, 200, 12.5)

            async def one(task: int) -> None:
                for n in range(changes // tasks):
                    intent_id = await log.begin(_intent(task * 1_000_000 + n))
                    await log.finish(intent_id, applied, durable=False)

            await asyncio.gather(*(one(t) for t in range(tasks)))

    asyncio.run(run())


def replay(rows_from: Path, batch: int, drop: list[str]) -> dict[str, float]:
    """Thread CPU per row of inserting ``rows_from``'s entries into a fresh store."""
    from audit import upgrade

    with tempfile.TemporaryDirectory(prefix="entry-row-cpu-") as tmp:
        path = Path(tmp) / "audit.db"
        asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
        with sqlite3.connect(rows_from) as source:
            rows = source.execute(
                "SELECT seq, body, prev_hash, hash FROM audit_entry ORDER BY seq"
            ).fetchall()
        con = sqlite3.connect(path, isolation_level=None)
        try:
            for name in drop:
                con.execute(f"DROP INDEX {name}")
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=OFF")
            sql = "INSERT INTO audit_entry (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)"
            started = time.thread_time()
            for start in range(0, len(rows), batch):
                con.execute("BEGIN IMMEDIATE")
                con.executemany(sql, rows[start : start + batch])
                con.execute("COMMIT")
            cpu = time.thread_time() - started
        finally:
            con.close()
    return {"row_us": 1e6 * cpu / len(rows), "rows": len(rows), "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, help="checkout B (after)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--drop", default="", help="indexes to drop, comma-separated")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    drop = [name for name in args.drop.split(",") if name]
    if args.child:
        print(json.dumps(replay(args.rows, args.batch, drop)))
        return 0
    if args.a is None or args.b is None:
        parser.error("--a and --b are required")
    from bench.procs import child_on, run_ab  # here: the child runs another checkout's code

    with tempfile.TemporaryDirectory(prefix="entry-row-cpu-") as tmp:
        rows = Path(tmp) / "rows.db"
        fill(rows, args.changes)
        extra = ["--rows", str(rows), "--batch", str(args.batch), "--drop", args.drop]
        run_ab(args.a, args.b, args.rounds, lambda checkout: child_on(
            checkout, __file__, *extra), lambda got: (
            f"{got['row_us']:5.2f} us/row ({got['rows']:.0f} rows), load {got['load']:.2f}"
        ), {"row_us": "CPU per row"})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
