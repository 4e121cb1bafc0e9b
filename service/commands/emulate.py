"""``gdpr-gateway emulate``: the four emulated upstreams alone, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from service.emulators import EmulatorCluster
from service.registry import SYSTEMS

DEFAULT_BASE_PORT = 9000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="serve the emulated upstream APIs",
        description=(
            f"Serve the emulated upstreams ({', '.join(SYSTEMS)}) on ports "
            f"BASE+1..BASE+{len(SYSTEMS)} with the demo customers and credentials of "
            "docs/upstreams.md."
        ),
    )
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                        help=f"ports are BASE+1..BASE+{len(SYSTEMS)} in the order "
                        f"{', '.join(SYSTEMS)}; "
                        f"0 picks free ports (default {DEFAULT_BASE_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--no-rate-limit", action="store_true",
                        help="switch off billbee's 2 requests/second limit")
    parser.add_argument("--no-retry-after", action="store_true",
                        help="billbee's 429 answers carry no Retry-After header")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.base_port <= 65535 - len(SYSTEMS):
        print(f"gdpr-gateway emulate: --base-port must be between 0 and {65535 - len(SYSTEMS)}",
              file=sys.stderr)
        return 2
    cluster = EmulatorCluster(
        args.host, args.base_port,
        rate_limit=not args.no_rate_limit, retry_after=not args.no_retry_after,
    )
    try:
        return asyncio.run(serve(cluster))
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        return 130


async def serve(cluster: EmulatorCluster, stop: asyncio.Event | None = None) -> int:
    """Start ``cluster``, print where each system listens, wait for ``stop`` or a signal."""
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        try:
            await cluster.start()
        except OSError as exc:
            print(f"gdpr-gateway emulate: cannot listen ({exc.strerror or type(exc).__name__}); "
                  "choose another --base-port (0 picks free ports)", file=sys.stderr)
            return 2
        for system in SYSTEMS:
            print(f"{system:<8} {cluster.urls[system]}  (port {cluster.ports[system]})",
                  flush=True)
        print("emulators ready; Ctrl-C or SIGTERM stops them", flush=True)
        await stop.wait()
        print("stopping emulators", flush=True)
        return 0
    finally:
        await cluster.stop()
        for sig in handled:
            loop.remove_signal_handler(sig)
