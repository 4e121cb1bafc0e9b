"""``gdpr-gateway demo``: the gateway, the four emulated upstreams and SQLite audit, at once."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

import uvloop

from audit.statedir import open_demo_state
from service.app import create_app
from service.demo_settings import DEMO_TOKENS, demo_settings
from service.emulators import EmulatorCluster
from service.logs import configure_logging
from service.registry import SYSTEMS
from service.shutdown import run_server

DEFAULT_STATE_DIR = Path(".gdpr-gateway-demo")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the gateway with the emulated upstreams and a local audit log",
        description=f"Runs the gateway on --port and the emulators of {', '.join(SYSTEMS)} "
        f"on --port+1 .. --port+{len(SYSTEMS)}, keeping the audit log and its keys "
        "under --state-dir, so a second run continues the same log.",
    )
    parser.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR,
        help=f"audit database and keys (default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level (default WARNING)")
    parser.add_argument(
        "--drain-seconds", type=float, default=0.0,
        help="on SIGTERM, keep serving this long with /readyz at 503 before stopping, "
        "as serve does with shutdown.drain_seconds (default 0: no load balancer in front)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    # a port in use, a state folder that cannot be written: said by service.failures
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            serve_demo(args.host, args.port, args.state_dir,
                       drain_seconds=max(0.0, args.drain_seconds))
        )
    return 0


async def serve_demo(
    host: str, port: int, state_dir: Path, *, out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None, drain_seconds: float = 0.0,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down as ``serve`` does
    (service/shutdown.py: drain, finish what is under way, flush and sign the audit
    log), and stop the emulators last."""
    cluster = EmulatorCluster(host, base_port=port)
    await cluster.start()
    try:
        audit_url, master_key, signing_key = open_demo_state(state_dir)
        settings = demo_settings(
            port=port,
            state_dir=state_dir,
            upstream_urls=cluster.urls,
            audit_url=audit_url,
            master_key=master_key,
            signing_key=signing_key,
        )
        await run_server(
            create_app(settings, migrate=True),
            settings,
            host=host,
            port=port,
            drain_seconds=drain_seconds,
            stop=stop,
            on_started=lambda _runner: print_guide(
                out, f"http://{host}:{port}", cluster.urls, state_dir
            ),
        )
        print("demo: stopped", file=out, flush=True)
    finally:
        await cluster.stop()


def print_guide(out: TextIO, url: str, upstreams: dict[str, str], state_dir: Path) -> None:
    lines = [
        f"gdpr-gateway demo listening on {url}",
        "",
        "Upstream emulators:",
        *[f"  {system:8} {url}" for system, url in upstreams.items()],
        f"Audit log and keys: {state_dir}/",
        "",
        "Tokens (Authorization: Bearer <token>):",
        *[
            f"  {token:14} roles: {', '.join(sorted(roles))}"
            for token, (_name, roles) in DEMO_TOKENS.items()
        ],
        "",
        "Try:",
        f"  curl -s {url}/v1/systems -H 'Authorization: Bearer demo-editor'",
        f"  curl -s -X PATCH {url}/v1/systems/billbee/customers/1002 \\",
        "       -H 'Authorization: Bearer demo-editor' -H 'X-Purpose: customer_service' \\",
        "       -H 'Content-Type: application/json' -d '{\"Tel1\": \"+49 30 1234567\"}'",
        f"  curl -s {url}/v1/audit?limit=5 -H 'Authorization: Bearer demo-auditor'",
        f"  gdpr-gateway audit verify --state-dir {state_dir}",
        "",
        "Ctrl-C stops.",
    ]
    print("\n".join(lines), file=out, flush=True)
