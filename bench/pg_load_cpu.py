"""PostgreSQL's CPU per answer under the gateway's load, by backend (issue 11).

    python -m bench.pg_load_cpu [--checkout DIR] [--system keycom] [--seconds 10]
        [--warmup 3] [--connections 32] [--sample-hz 50]

Starts the emulators and one gateway (``serve --workers 1``, from ``--checkout``, default
this one) on a fresh PostgreSQL database of its own, warms it up, then loads it with wrk
(``bench/patch.lua``) for ``--seconds`` while it watches that database's server
processes: ``pg_stat_activity`` sampled ``--sample-hz`` times a second says what each
backend is (the chain writer: statements on ``audit_head``/``audit_entry``; a lock
session: the batched ``pg_try_advisory_lock``; a dedicated lock connection: a blocking
``pg_advisory_lock``; autovacuum) and, for the chain writer, which statement it was in
(time-weighted: the conditional one-statement append, the full way's ``BEGIN``, head
``FOR UPDATE``, statement-by-statement writes, ``COMMIT``). The CPU (utime + stime) of each
backend comes from ``/proc/<pid>/stat`` before and after; the server-wide helpers
(walwriter, checkpointer, ...) are shown apart: other databases on the shared server
use them too.

Also printed, as deltas over the run: the gateway's batch histogram (``/metrics``:
entries per batch), the tables' counters (``pg_stat_user_tables``: inserts, updates,
HOT updates, deletes, dead tuples, scans, autovacuums), the database's commits and
``pg_stat_wal`` (server-wide). Not a test assertion: a diagnosis tool.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg

from bench.load import WORKLOADS, eligible_customers, run_wrk
from bench.procs import (
    PG_ADMIN,
    Emulators,
    audit_store,
    cli,
    cpu_seconds,
    free_port,
    gateway_config,
    server,
)

_TICK = os.sysconf("SC_CLK_TCK")
_TABLES = ("audit_head", "audit_entry", "audit_open_intent", "audit_subject_key")
_TABLE_COLUMNS = (
    "n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del", "n_dead_tup", "n_live_tup",
    "seq_scan", "idx_scan", "autovacuum_count", "autoanalyze_count",
)
_WAL_COLUMNS = ("wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync")


def backend_cpu(pid: int) -> float:
    """utime + stime seconds of one process (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def role(query: str, backend_type: str) -> str:
    """What a backend of the bench's database is, from the statement it last ran."""
    if backend_type != "client backend":
        return backend_type
    q = query.lower()
    if "unnest($1::bigint[], $2::bool[])" in q:
        return "lock session"
    if "pg_advisory_lock" in q or "pg_advisory_unlock" in q:
        return "dedicated lock"
    if "audit_head" in q or "audit_entry" in q or q.strip() in ("begin", "commit") or (
        "audit_open_intent" in q or "audit_subject_key" in q or "audit_checkpoint" in q
    ):
        return "chain writer"
    return "other"


def statement_kind(query: str) -> str:
    """The chain writer's statement, as a short name."""
    q = " ".join(query.split()).lower()
    if q.startswith("with head as (update audit_head") and "and seq = $5" in q:
        return "one statement, conditional"
    if q.startswith("with head as"):
        return "one statement, in a transaction"
    if q.startswith("begin"):
        return "BEGIN"
    if q == "commit":
        return "COMMIT"
    if "for update" in q:
        return "head FOR UPDATE"
    match = re.match(r"(insert into|delete from|update|select .*? from) (\w+)", q)
    return f"{match.group(1).split()[0]} {match.group(2)}" if match else q[:40]


def _histogram(url: str, name: str) -> dict[str, float]:
    """Buckets, sum and count of one histogram of the gateway's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:  # noqa: S310
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key[len(name):]] = float(value)
    return out


async def _stats(conn: Any) -> dict[str, Any]:
    tables = {
        r["relname"]: dict(r)
        for r in await conn.fetch(
            f"SELECT relname, {', '.join(_TABLE_COLUMNS)} FROM pg_stat_user_tables"  # noqa: S608
        )
    }
    db = dict(await conn.fetchrow(
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,"
        " blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ))
    wal = dict(await conn.fetchrow(f"SELECT {', '.join(_WAL_COLUMNS)} FROM pg_stat_wal"))  # noqa: S608
    return {"tables": tables, "db": db, "wal": wal}


class Watch:
    """Samples the bench database's backends and the server's helpers while the load runs."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.roles: dict[int, Counter[str]] = defaultdict(Counter)
        self.writer_states: dict[int, Counter[str]] = defaultdict(Counter)
        self.start_cpu: dict[int, float] = {}
        self.samples = 0

    async def sample(self, conn: Any) -> None:
        rows = await conn.fetch(
            "SELECT pid, datname, backend_type, state, query FROM pg_stat_activity"
            " WHERE (datname = $1 OR datname IS NULL) AND pid <> pg_backend_pid()",
            self.database,
        )
        self.samples += 1
        for r in rows:
            pid, kind = r["pid"], role(r["query"] or "", r["backend_type"] or "")
            if pid not in self.start_cpu:
                self.start_cpu[pid] = backend_cpu(pid)
            self.roles[pid][kind] += 1
            if kind == "chain writer":
                state = "idle" if r["state"] == "idle" else statement_kind(r["query"] or "")
                if r["state"] == "idle in transaction":
                    state = f"in transaction after {statement_kind(r['query'] or '')}"
                self.writer_states[pid][state] += 1

    def cpu_by_role(self) -> dict[str, tuple[float, int]]:
        """CPU seconds used since first seen, and backends, per role."""
        out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for pid, seen in self.roles.items():
            kind = seen.most_common(1)[0][0]
            if kind == "chain writer" or "lock" in kind or kind == "other":
                kind = next((k for k in ("chain writer", "lock session", "dedicated lock")
                             if seen[k]), kind)
            used = max(0.0, backend_cpu(pid) - self.start_cpu[pid])
            out[kind][0] += used
            out[kind][1] += 1
        return {k: (v[0], int(v[1])) for k, v in out.items()}


async def _observe(watch: Watch, dsn: str, load: asyncio.Future[Any], hz: float) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        while not load.done():
            await watch.sample(conn)
            await asyncio.sleep(1.0 / hz)
    finally:
        await conn.close()


async def _perf(watch: Watch, out: Path, seconds: int) -> None:
    """``perf record`` of the chain writer's backend, from 1 s into the load."""
    await asyncio.sleep(1.0)
    writers = [p for p, seen in watch.roles.items() if seen["chain writer"]]
    if not writers:
        print("perf: no chain writer seen yet")
        return
    proc = await asyncio.create_subprocess_exec(
        "perf", "record", "-F", "1999", "-g", "-o", str(out), "-p", str(writers[0]),
        "--", "sleep", str(seconds),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


def _le(key: str) -> str:
    return key.split('"')[1]


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {k: (v - before.get(k, 0) if isinstance(v, int | float) else v)
            for k, v in after.items()}


async def measure(url: str, gateway_pid: int, database: str, args: argparse.Namespace,
                  ids_file: Path) -> None:
    workload = WORKLOADS[args.system]
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    stats_conn = await asyncpg.connect(dsn)
    watch = Watch(database)
    admin = await asyncpg.connect(PG_ADMIN)
    await watch.sample(admin)
    await stats_conn.execute("SELECT pg_stat_clear_snapshot()")
    before = await _stats(stats_conn)
    batches_before = _histogram(url, "gdpr_gateway_audit_batch_entries")
    gateway_before = cpu_seconds(gateway_pid)
    started = time.monotonic()
    load = asyncio.ensure_future(asyncio.to_thread(
        run_wrk, url, workload, ids_file, stamp=3, connections=args.connections,
        seconds=args.seconds,
    ))
    perf = (asyncio.ensure_future(_perf(watch, args.perf, max(1, args.seconds - 2)))
            if args.perf else None)
    await _observe(watch, PG_ADMIN, load, args.sample_hz)
    run = await load
    if perf is not None:
        await perf
    elapsed = time.monotonic() - started
    gateway_used = cpu_seconds(gateway_pid) - gateway_before
    by_role = watch.cpu_by_role()
    await admin.close()
    await asyncio.sleep(0.6)  # the stats collector's flush (PG 15: at a backend's idle)
    await stats_conn.execute("SELECT pg_stat_clear_snapshot()")
    after = await _stats(stats_conn)
    batches = _delta(_histogram(url, "gdpr_gateway_audit_batch_entries"), batches_before)
    await stats_conn.close()
    answers = max(1, run["requests"])
    print(f"load: {run['rps']:.0f} answers/s over {elapsed:.1f} s, {run['statuses']};"
          f" 1-min load {os.getloadavg()[0]:.2f}; {watch.samples} samples")
    print(f"gateway process: {1e6 * gateway_used / answers:.0f} µs CPU/answer"
          f" ({100 * gateway_used / elapsed:.0f} % of a core)")
    entries = after["tables"]["audit_entry"]["n_tup_ins"] - before["tables"]["audit_entry"][
        "n_tup_ins"]
    print(f"audit entries: {entries} ({entries / answers:.2f} per answer)")
    for kind, (used, n) in sorted(by_role.items(), key=lambda kv: -kv[1][0]):
        print(f"  {kind:24s} {n:3d} backend(s): {1e6 * used / answers:7.1f} µs/answer,"
              f" {1e6 * used / max(1, entries):7.1f} µs/entry, {100 * used / elapsed:5.1f} %")
    count = batches.get("_count", 0)
    if count:
        print(f"batches: {count:.0f}, mean {batches.get('_sum', 0) / count:.2f} entries;"
              " cumulative buckets: " + ", ".join(
                  f"≤{_le(k)}: {v:.0f}" for k, v in batches.items()
                  if k.startswith("_bucket")))
    for pid, states in watch.writer_states.items():
        total = sum(states.values())
        print(f"  writer pid {pid}: " + ", ".join(
            f"{k} {100 * v / total:.0f} %" for k, v in states.most_common()))
    for table in _TABLES:
        d = _delta(after["tables"].get(table, {}), before["tables"].get(table, {}))
        print(f"  {table}: " + ", ".join(f"{k} {d.get(k)}" for k in _TABLE_COLUMNS)
              + f" (dead now {after['tables'].get(table, {}).get('n_dead_tup')})")
    print("  database: " + ", ".join(f"{k} {v}" for k, v in _delta(after["db"],
                                                                        before["db"]).items()))
    print("  wal (server-wide): " + ", ".join(
        f"{k} {v}" for k, v in _delta(after["wal"], before["wal"]).items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=Path.cwd())
    parser.add_argument("--system", choices=tuple(WORKLOADS), default="keycom")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sample-hz", type=float, default=50.0)
    parser.add_argument("--perf", type=Path, default=None,
                        help="perf record the chain writer's backend into this file")
    args = parser.parse_args(argv)
    workload = WORKLOADS[args.system]
    checkout = args.checkout.resolve()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        ids_file = folder / "ids.txt"
        ids_file.write_text("\n".join(map(str, eligible_customers(workload).ids)) + "\n")
        emulators = stack.enter_context(Emulators(folder / "emulators.log"))
        port = free_port()
        audit_url = stack.enter_context(audit_store("postgres", folder))
        database = audit_url.rsplit("/", 1)[1]
        config = gateway_config(folder, port=port, audit_url=audit_url, urls=emulators.urls,
                                conflict_check=True)
        env = dict(os.environ, PYTHONPATH=str(checkout))
        subprocess.run([cli(), "db", "upgrade", "--config", str(config)],  # noqa: S603
                       env=env, check=True, capture_output=True, cwd=checkout)
        proc = stack.enter_context(server(
            [cli(), "serve", "--config", str(config), "--workers", "1"], port, "gateway",
            folder / "gateway.log", env=env,
        ))
        url = f"http://127.0.0.1:{port}"
        if args.warmup:
            run_wrk(url, workload, ids_file, stamp=1, connections=args.connections,
                    seconds=args.warmup)
        asyncio.run(measure(url, proc.pid, database, args, ids_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
