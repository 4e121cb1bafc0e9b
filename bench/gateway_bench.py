"""End-to-end throughput: the gateway against a bare aiohttp pass-through proxy.

Starts the four emulators (rate limit off), the bare proxy and the gateway (full policy,
durable audit on SQLite or PostgreSQL) as separate processes on loopback, and drives each
with wrk (PATCH of random generated customers). Prints one line per run and the ratio.

    python -m bench.gateway_bench [--duration 10] [--connections 32] [--system keycom]
                                  [--store sqlite|postgres|both] [--no-conflict-check]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
FIELDS = {"keycom": "note", "billbee": "Tel1"}


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def process(*argv: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603 - our own commands
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A database of its own for one run (the audit store holds keys of one master key)."""
    import asyncio

    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wrk(port: int, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, BENCH_SYSTEM=args.system, BENCH_FIELD=FIELDS[args.system])
    out = subprocess.run(  # noqa: S603 - fixed argv
        [
            shutil.which("wrk") or "wrk", "-t1", f"-c{args.connections}",
            f"-d{args.duration}s", "--latency",
            "-s", str(HERE / "patch.lua"), f"http://127.0.0.1:{port}",
        ],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    match = re.search(r"RESULT (.*)", out)
    if match is None:
        raise RuntimeError("wrk printed no RESULT line")
    return {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--system", choices=sorted(FIELDS), default="keycom")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--no-conflict-check", action="store_true")
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop",
        help="event loop of the gateway AND the baseline (serve uses uvloop)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    py = sys.executable
    cli = str(Path(py).with_name("gdpr-gateway"))
    emu_base, bare_port, gw_port = 8300, 8290, 8280
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    with tempfile.TemporaryDirectory() as tmp, process(
        cli, "emulate", "--base-port", str(emu_base), "--no-rate-limit"
    ):
        for i in range(1, 5):
            wait_port(emu_base + i)
        urls = {"billbee": f"http://127.0.0.1:{emu_base + 2}",
                "keycom": f"http://127.0.0.1:{emu_base + 4}"}
        # the baseline makes the same upstream calls as the gateway: with the
        # edit-conflict check on, that is GET, GET, write
        reread = [] if args.no_conflict_check else ["--reread"]
        loop = ["--uvloop"] if args.loop == "uvloop" else []
        with process(py, "-m", "bench.bare_proxy", "--port", str(bare_port),
                     "--billbee", urls["billbee"], "--keycom", urls["keycom"], *reread, *loop):
            wait_port(bare_port)
            wrk(bare_port, argparse.Namespace(**{**vars(args), "duration": 2}))  # warm-up
            bare = wrk(bare_port, args)
        print(f"event loop: {args.loop}; connections: {args.connections}; "
              f"duration: {args.duration} s; conflict check: {not args.no_conflict_check}")
        print(f"bare proxy      {args.system}: {bare['rps']:8.1f} req/s  "
              f"p50 {bare['p50_ms']:.2f} ms  p99 {bare['p99_ms']:.2f} ms  "
              f"non-2xx {bare['non2xx']:.0f}")
        for store in stores:
            extra = ["--no-conflict-check"] if args.no_conflict_check else []
            extra += loop
            with contextlib.ExitStack() as stack:
                if store == "sqlite":
                    url = f"sqlite+aiosqlite:///{tmp}/audit-{uuid.uuid4().hex}.db"
                else:
                    url = stack.enter_context(fresh_pg_database())
                stack.enter_context(process(
                    py, "-m", "bench.run_gateway", "--port", str(gw_port),
                    "--emulator-base-port", str(emu_base), "--audit-url", url,
                    "--state-dir", tmp, *extra,
                ))
                wait_port(gw_port)
                wrk(gw_port, argparse.Namespace(**{**vars(args), "duration": 2}))
                gw = wrk(gw_port, args)
            print(f"gateway {store:8} {args.system}: {gw['rps']:8.1f} req/s  "
                  f"p50 {gw['p50_ms']:.2f} ms  p99 {gw['p99_ms']:.2f} ms  "
                  f"non-2xx {gw['non2xx']:.0f}  ratio {gw['rps'] / bare['rps']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
