"""Run the gateway for a benchmark: demo tokens and credentials, no upstream pacing.

    python -m bench.run_gateway --port 8400 --emulator-base-port 8300 \
        --audit-url sqlite+aiosqlite:///tmp/x/audit.db --state-dir /tmp/x [--no-conflict-check]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from pathlib import Path

from aiohttp import web

from service.app import create_app
from service.demo_settings import demo_settings
from service.registry import SYSTEMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--emulator-base-port", type=int, required=True)
    parser.add_argument("--audit-url", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--no-conflict-check", action="store_true")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument("--reuse-port", action="store_true", help="share the port (workers)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    urls = {
        system: f"http://127.0.0.1:{args.emulator_base_port + i}"
        for i, system in enumerate(SYSTEMS, start=1)
    }
    settings = demo_settings(
        port=args.port,
        state_dir=args.state_dir,
        upstream_urls=urls,
        audit_url=args.audit_url,
        master_key=os.urandom(32),
        signing_key=os.urandom(32),
    )
    upstreams = {
        name: dataclasses.replace(upstream, rate_limit_per_second=None)
        for name, upstream in settings.upstreams.items()
    }
    settings = dataclasses.replace(
        settings, upstreams=upstreams, conflict_check=not args.no_conflict_check
    )
    web.run_app(
        create_app(settings, migrate=True),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        reuse_port=args.reuse_port or None,
    )


if __name__ == "__main__":
    main()
