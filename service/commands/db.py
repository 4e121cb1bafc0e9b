"""``gdpr-gateway db upgrade``: apply the audit store's schema migrations."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from audit import AuditError, upgrade
from audit.statedir import resolve_settings, store_url


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--state-dir DIR`` (the demo's store) or ``--config FILE`` (a deployment's)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state-dir", metavar="DIR", help="the demo's state folder (default ./.gdpr-gateway-demo)"
    )
    where.add_argument("--config", metavar="FILE", help="a deployment's YAML config file")


def _upgrade(args: argparse.Namespace) -> int:
    try:
        # a deployment's config: the URL only (a migration job is given no keys)
        url = (
            store_url(args.config)
            if args.config is not None
            else resolve_settings(args.state_dir, None).url
        )
        asyncio.run(upgrade(url))
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a database that cannot be reached: say so, no traceback
        print(f"error: cannot migrate the audit store ({type(exc).__name__})", file=sys.stderr)
        return 2
    print("audit store schema is up to date")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database administration")
    sub = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = sub.add_parser("upgrade", help="apply the audit store's schema migrations")
    add_store_options(up)
    up.set_defaults(handler=_upgrade)
