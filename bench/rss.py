"""Memory per worker with many open connections (issue 11: RSS <= 150 MB per worker
with 1,000 open connections).

    python -m bench.rss [--workers 2] [--connections 1000] [--changes 200]
        [--store sqlite|postgres] [--out FILE]

Starts the emulators and ``gdpr-gateway serve --config FILE --workers N`` as the
end-to-end bench does (bench/procs.py: a fresh audit store, the full shipped policy),
then: reads every process's memory (the baseline); sends ``--changes`` PATCHes of
keycom customers (the whole path: policy, audit, upstream, masking) over 8 connections;
opens ``--connections`` keep-alive connections, each answering one ``GET /readyz`` and
then left open and idle; reads the memory again while they are open; and prints one
JSON object (also written to ``--out``): per process (the supervisor, each worker) its
RSS, its unique and proportional set sizes (``/proc/PID/smaps_rollup``: USS = private
pages, PSS = private plus its share of the pages forked workers still share with the
supervisor), and how many of the connections it holds. Figures and what they mean:
docs/performance.md, "Workers (issue 11)".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import WORKLOADS, eligible_customers
from bench.procs import (
    TOKEN,
    Emulators,
    audit_store,
    cli,
    free_port,
    gateway_config,
    run_cli,
    server,
)

_KB = 1024


def memory(pid: int) -> dict[str, float]:
    """RSS, USS and PSS of one process, in MB."""
    status = {
        line.split(":")[0]: line.split()[1]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith(("VmRSS", "RssAnon", "RssFile"))
    }
    rollup: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        rollup[name] = int(value.split()[0])
    uss = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
    return {
        "rss_mb": round(int(status["VmRSS"]) / _KB, 1),
        "rss_anon_mb": round(int(status["RssAnon"]) / _KB, 1),
        "uss_mb": round(uss / _KB, 1),
        "pss_mb": round(rollup.get("Pss", 0) / _KB, 1),
    }


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def held(pids: list[int], port: int) -> dict[int, int]:
    """Established connections on ``port`` per process."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    counts = dict.fromkeys(pids, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                owner = inodes.get(fields[9])
                if owner is not None:
                    counts[owner] += 1
    return counts


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _changes(port: int, ids: list[int], count: int) -> list[int]:
    """``count`` PATCHes over 8 keep-alive connections; their statuses."""
    statuses: list[int] = []

    async def one_connection(lane: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in range(lane, count, 8):
            body = json.dumps({"phone": f"+358 40 {n:07d}"}).encode()
            writer.write(
                f"PATCH /v1/systems/keycom/customers/{ids[n % len(ids)]} HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"X-Purpose: customer_service\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            statuses.append(await _answer(reader))
        writer.close()

    await asyncio.gather(*(one_connection(lane) for lane in range(8)))
    return statuses


async def _open(port: int, count: int) -> tuple[list[asyncio.StreamWriter], list[int]]:
    """``count`` connections, each with one answered request, left open."""
    writers: list[asyncio.StreamWriter] = []
    statuses: list[int] = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        statuses.append(await _answer(reader))
        writers.append(writer)
    return writers, statuses


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    ids = eligible_customers(WORKLOADS["keycom"]).ids
    with Emulators(folder / "emulators.log") as emulators, \
            audit_store(args.store, folder) as url:
        port = free_port()
        config = gateway_config(folder, port=port, audit_url=url, urls=emulators.urls,
                                conflict_check=True)  # fmt: skip
        run_cli("db", "upgrade", "--config", str(config))
        argv = [cli(), "serve", "--config", str(config), "--workers", str(args.workers)]
        with server(argv, port, "gateway", folder / "gateway.log") as proc:
            workers = children(proc.pid) if args.workers > 1 else [proc.pid]
            deadline = time.monotonic() + 30
            while args.workers > 1 and len(workers) < args.workers:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.1)
                workers = children(proc.pid)
            time.sleep(1.0)  # every worker up and idle
            pids = sorted({proc.pid, *workers})
            before = {pid: memory(pid) for pid in pids}
            loop = asyncio.new_event_loop()
            try:
                changes = loop.run_until_complete(_changes(port, ids, args.changes))
                writers, opened = loop.run_until_complete(_open(port, args.connections))
                time.sleep(1.0)
                after = {pid: memory(pid) for pid in pids}
                holding = held(pids, port)
                for writer in writers:
                    writer.close()
            finally:
                loop.close()
    role = {pid: "supervisor" if pid == proc.pid and args.workers > 1 else "worker"
            for pid in pids}  # fmt: skip
    return {
        "workers": args.workers,
        "store": args.store,
        "connections_open": len(writers),
        "changes": {str(s): changes.count(s) for s in sorted(set(changes))},
        "connection_answers": {str(s): opened.count(s) for s in sorted(set(opened))},
        "processes": [
            {"pid": pid, "role": role[pid], "connections": holding[pid],
             "idle": before[pid], "with_connections": after[pid]}
            for pid in pids
        ],
        "max_worker_rss_mb": max(after[p]["rss_mb"] for p in pids if role[p] == "worker"),
        "total_pss_mb": round(sum(after[p]["pss_mb"] for p in pids), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 512
    if soft < wanted:  # the client's sockets, and the gateway's (it inherits the limit)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    with tempfile.TemporaryDirectory(prefix="rss-bench-") as tmp:
        result = measure(args, Path(tmp))
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
