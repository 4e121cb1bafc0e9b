"""SQLite's WAL checkpoints and the commits one request at a time (audit.wal).

On a fresh SQLite file: ``--prefill`` changes by 32 concurrent callers (the bench's
throughput run before its latency run), then ``--count`` changes one at a time, as the
gateway writes them (``begin``, a 1 ms pause for the upstream, ``finish(durable=False)``).
Prints one JSON line: the ``begin`` latency (p50, p99, p99.9, max), the CPU per change,
and, timed on the writer thread, every ``COMMIT`` during which the WAL's checkpointed-frame count
(``nBackfill``, read from the ``-shm`` file: the wal-index header of
https://www.sqlite.org/walformat.html) went up, i.e. which ran or overlapped a
checkpoint, with their duration; and the durable commits that ran while a background
passive checkpoint did (each timed on the checkpoint thread), with theirs, and the passive
checkpoints the writer thread ran before a transaction (``WalCheckpointer.before_write``);
the WAL's restarts (its frame count ``mxFrame``, read after each commit, went down) and
its most frames, and the writer's waits for a catch-up pass before a transaction (so
that the WAL restarts: ``audit.wal.RESTART_WAIT_SECONDS``).

``--tasks N`` makes the measured changes N callers at once (the gateway under load,
where the writer begins its next transaction right after each commit) instead of one at
a time; ``begin`` is then each caller's.

``--in-commit`` runs SQLite's default instead (auto-checkpoint every 1,000 pages inside
the commit, no background): the behaviour before audit.wal. Alternate the two.

    python -m bench.wal_bench [--in-commit | --interval 0.2] [--count 2500] [--prefill 8000]
        [--tasks 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import audit.wal
from audit import AuditLog, Outcome
from audit.store_sqlite import SqliteBackend
from bench.audit_bench import MASTER, SIGNING, _intent

#: (start, ms, checkpointed during it, durable) of every COMMIT on the writer thread
COMMITS: list[tuple[float, float, bool, bool]] = []
#: (start, end, on the writer thread) of every passive checkpoint (``audit.wal._passive``)
PASSES: list[tuple[float, float, bool]] = []
#: the WAL's frames after each COMMIT (``mxFrame``); the writer's waits (ms) for a pass
FRAMES: list[int] = []
WAITS: list[float] = []


def _backfill(path: Path) -> int:
    """The WAL's frames already copied into the database (wal-index header, offset 96)."""
    try:
        with open(f"{path}-shm", "rb") as shm:
            shm.seek(96)
            return int(struct.unpack("=I", shm.read(4))[0])
    except (OSError, struct.error):
        return -1


def _frames(path: Path) -> int:
    """The WAL's frames (wal-index header, offset 16): 0 after a restart."""
    try:
        with open(f"{path}-shm", "rb") as shm:
            shm.seek(16)
            return int(struct.unpack("=I", shm.read(4))[0])
    except (OSError, struct.error):
        return -1


def _timed_waits() -> None:
    """The writer's waits for a catch-up pass before a transaction, timed."""
    original = audit.wal.WalCheckpointer.before_write

    def timed(self: audit.wal.WalCheckpointer, con: Any) -> None:
        settled = getattr(self, "_settled", None)  # None: a checkout before the wait
        if settled is None or settled.is_set():
            return original(self, con)
        started = time.perf_counter()
        try:
            return original(self, con)
        finally:
            WAITS.append((time.perf_counter() - started) * 1e3)

    audit.wal.WalCheckpointer.before_write = timed  # type: ignore[method-assign]


def _timed_commits() -> None:
    original = SqliteBackend._w_end

    def timed(self: SqliteBackend, durable: bool, commit: bool = False) -> None:
        if not commit:
            return original(self, durable, commit)
        before, started = _backfill(self._path), time.perf_counter()
        try:
            return original(self, durable, commit)
        finally:
            ms = (time.perf_counter() - started) * 1e3
            COMMITS.append((started, ms, _backfill(self._path) > before, durable))
            FRAMES.append(_frames(self._path))

    SqliteBackend._w_end = timed  # type: ignore[method-assign]


def _timed_passes() -> None:
    """Every passive checkpoint's (start, end, on the writer thread or not)."""
    original = audit.wal._passive

    def timed(con: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(con)
        finally:
            on_writer = threading.current_thread().name != "audit-sqlite-ckpt"
            PASSES.append((started, time.perf_counter(), on_writer))

    audit.wal._passive = timed


def _overlapping() -> list[float]:
    """The durations (ms) of the durable commits that ran while a background pass did."""
    passes = [(s, e) for s, e, on_writer in PASSES if not on_writer]
    return [
        ms for started, ms, _, durable in COMMITS
        if durable and any(s < started + ms / 1e3 and started < e for s, e in passes)
    ]  # fmt: skip


def _pass_ms(on_writer: bool) -> dict[str, Any]:
    took = sorted((e - s) * 1e3 for s, e, w in PASSES if w is on_writer)
    return {"count": len(took), "p50": _at(took, 0.5), "max": _at(took, 1.0)} if took else {}


def _at(ordered: list[float], share: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


async def run(count: int, prefill: int, tasks: int = 1) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="wal-bench-"))
    url = f"sqlite+aiosqlite:///{folder / 'audit.db'}"
    log = await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING, create=True)
    outcome = Outcome("applied", upstream_status=200, upstream_latency_ms=1.0)

    async def change(n: int) -> float:
        started = time.perf_counter()
        intent_id = await log.begin(_intent(n))
        took = time.perf_counter() - started
        await asyncio.sleep(0.001)
        await log.finish(intent_id, outcome, durable=False)
        return took * 1e3

    async def caller(index: int) -> None:
        for k in range(prefill // 32):
            await change(index * 1_000_000 + k)

    try:
        await asyncio.gather(*(caller(i) for i in range(32)))
        await log.settle()
        COMMITS.clear()
        PASSES.clear()
        FRAMES.clear()
        WAITS.clear()
        load, cpu = os.getloadavg()[0], time.process_time()

        async def measured(index: int) -> list[float]:
            return [await change(100_000_000 + index * count + n) for n in range(count // tasks)]

        latencies = sorted(
            x for got in await asyncio.gather(*map(measured, range(tasks))) for x in got
        )
        cpu = time.process_time() - cpu
    finally:
        await log.close()
        shutil.rmtree(folder, ignore_errors=True)
    overlapped = sorted((round(ms, 1) for _, ms, hit, _ in COMMITS if hit), reverse=True)
    others = sorted(ms for _, ms, hit, durable in COMMITS if not hit and durable)
    beside = sorted(_overlapping())
    return {
        "begin_ms": {
            "p50": _at(latencies, 0.5), "p99": _at(latencies, 0.99),
            "p99.9": _at(latencies, 0.999), "max": round(latencies[-1], 2),
        },
        "cpu_ms_per_change": round(cpu / count * 1e3, 3),
        "commits": len(COMMITS),
        "commits_checkpointed": len(overlapped),
        "checkpointed_ms_slowest": overlapped[:12],
        "other_durable_commit_ms": {"p50": _at(others, 0.5), "p99": _at(others, 0.99)},
        "background_passes_ms": _pass_ms(False),
        "writer_thread_passes_ms": _pass_ms(True),
        "durable_commits_beside_a_pass": len(beside),
        "beside_a_pass_ms": {"p50": _at(beside, 0.5), "max": _at(beside, 1.0)} if beside else {},
        "wal_restarts": sum(1 for a, b in itertools.pairwise(FRAMES) if b < a),
        "wal_most_frames": max(FRAMES, default=0),
        "writer_waits_ms": {"count": len(WAITS), "p50": _at(sorted(WAITS), 0.5),
                            "max": _at(sorted(WAITS), 1.0)} if WAITS else {},
        "load_before": round(load, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-commit", action="store_true", help="SQLite's default checkpoints")
    parser.add_argument("--interval", type=float, default=audit.wal.INTERVAL_SECONDS,
                        help="seconds between background checkpoints")  # fmt: skip
    parser.add_argument("--count", type=int, default=2500)
    parser.add_argument("--prefill", type=int, default=8000)
    parser.add_argument("--tasks", type=int, default=1, help="callers at once, measured")
    args = parser.parse_args()
    audit.wal.INTERVAL_SECONDS = args.interval
    if args.in_commit:
        audit.wal.BACKSTOP_PAGES, audit.wal.INTERVAL_SECONDS = 1000, 1e9
    _timed_commits()
    _timed_passes()
    _timed_waits()
    result = asyncio.run(run(args.count, args.prefill, args.tasks))
    mode = "in-commit" if args.in_commit else f"background every {args.interval} s"
    print(json.dumps({"checkpoints": mode, **result}))


if __name__ == "__main__":
    main()
