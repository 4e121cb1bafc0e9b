"""``gdpr-gateway db upgrade``: apply the audit store's schema migrations."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from audit import AuditUnavailable, upgrade
from audit.statedir import demo_settings
from service.config import load_store_url


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--state-dir DIR`` (the demo's store) or ``--config FILE`` (a deployment's)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state-dir", metavar="DIR", help="the demo's state folder (default ./.gdpr-gateway-demo)"
    )
    where.add_argument(
        "--config", type=Path, metavar="FILE",
        help="a deployment's YAML config file (and GDPR_GATEWAY_* variables), as serve reads it",
    )


def _upgrade(args: argparse.Namespace) -> int:
    # a deployment's configuration: the URL is all that is needed (a migration job is
    # given no keys); the rest is checked as serve checks it
    url = (
        load_store_url(args.config, os.environ)
        if args.config is not None
        else demo_settings(args.state_dir).url
    )
    try:
        asyncio.run(upgrade(url))
    except (OSError, SQLAlchemyError) as exc:  # refused, unknown host, no such database
        raise AuditUnavailable("cannot reach the audit store") from exc
    print("audit store schema is up to date")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database administration")
    sub = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = sub.add_parser("upgrade", help="apply the audit store's schema migrations")
    add_store_options(up)
    up.set_defaults(handler=_upgrade)
