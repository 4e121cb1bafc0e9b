"""The ``gdpr-gateway`` entry point: discovers the sub-commands in ``service.commands``.

A command that fails in a way an operator can fix (``service.failures``: a bad
configuration, a store not initialised or unreachable, a wrong key, invalid policies,
an address in use) says so in a line that names the fix, and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from service import commands
from service.failures import reported


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdpr-gateway",
        description="A compliance gateway for customer-record updates to third-party APIs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except Exception as exc:
        if not reported(exc, args):
            raise
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover - the console script calls main()
    sys.exit(main())
