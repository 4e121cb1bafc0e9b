"""``gdpr-gateway serve --config FILE``: the production server.

Stops on SIGTERM/SIGINT by draining first (service/shutdown.py); SIGHUP reloads the
policies (service/reload.py). With more than one worker (``--workers``, the ``workers``
setting; by default the usable CPUs on PostgreSQL, 1 on SQLite) a supervisor runs the
workers and passes the signals on (service/workers.py)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from service.config import load_settings
from service.logs import configure_logging
from service.serving import serve_process
from service.workers import Supervisor, resolve_workers


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (the usable CPUs) or more")
    return value


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the gateway (production)",
        description="Run the gateway. Every setting may also come from GDPR_GATEWAY_* "
        "environment variables (see docs/configuration.md).",
    )
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--host", help="override the listen address")
    parser.add_argument("--port", type=int, help="override the listen port")
    parser.add_argument(
        "--workers", type=_count, metavar="N",
        help="worker processes sharing the port (overrides the workers setting; "
        "0: the usable CPUs, 1 on SQLite; 1: no supervisor)",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, os.environ)  # a ConfigError is said by service.cli
    configure_logging(settings.log_level)
    settings = dataclasses.replace(settings, workers=resolve_workers(settings, args.workers))
    host, port = args.host or settings.host, args.port or settings.port
    if settings.workers > 1:
        return Supervisor(settings, host, port, settings.workers).run()
    serve_process(settings, host, port)
    return 0
