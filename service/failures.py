"""The expected failures of the commands, each said as the line that names its fix.

``service.cli`` runs a command; when it fails with one of the exceptions of
:data:`FAILURES` (a table, first match wins: subclasses before their bases), the
command's answer is these lines on stderr and exit status 2 - no traceback. Anything
else is a bug and keeps its traceback. Lines name keys, files, variables and exception
types, never a value: a configuration's secrets and a database URL's password stay out.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from typing import Final

from audit.errors import AuditError, AuditUnavailable, KeyMismatch, StoreNotInitialised
from policies import MaskingConfigError, PolicyLoadError
from service.config_read import ConfigError
from service.reload import ReloadRefused

#: the address could not be had: taken, not ours, or not allowed (a bind error names no file)
_BIND_ERRORS: Final = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})

Explain = Callable[[BaseException, argparse.Namespace], list[str] | None]


def _store(args: argparse.Namespace) -> str:
    """The store options the command was given, to repeat in a suggested command."""
    if getattr(args, "config", None) is not None:
        return f" --config {args.config}"
    if getattr(args, "state_dir", None) is not None:
        return f" --state-dir {args.state_dir}"
    return ""


def _innermost(exc: BaseException) -> str:
    """The type of the failure at the bottom of a chain (``ConnectionRefusedError``)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


def _config(exc: BaseException, _args: argparse.Namespace) -> list[str]:
    assert isinstance(exc, ConfigError)
    return [f"config error: {line}" for line in exc.errors]


def _not_initialised(_exc: BaseException, args: argparse.Namespace) -> list[str]:
    return [
        "error: the audit store has no schema yet; create it first with "
        f"`gdpr-gateway db upgrade{_store(args)}`"
    ]


def _key_mismatch(_exc: BaseException, _args: argparse.Namespace) -> list[str]:
    return [
        "error: the master key does not open this audit store's subject keys; give the "
        "audit.master_key the store was written with"
    ]


def _unreachable(exc: BaseException, _args: argparse.Namespace) -> list[str]:
    return [
        f"error: cannot reach the audit store ({_innermost(exc)}); check audit.url and that "
        "the database is up and accepts this user"
    ]


def _policy(exc: BaseException, _args: argparse.Namespace) -> list[str]:
    assert isinstance(exc, PolicyLoadError)
    return [f"policy error: {line}" for line in exc.errors] + [
        "error: the policy files are invalid; fix the lines above "
        "(`gdpr-gateway policy check DIR` checks them without starting)"
    ]


def _refused(exc: BaseException, _args: argparse.Namespace) -> list[str]:
    assert isinstance(exc, ReloadRefused)
    where = ", ".join(exc.where) or "the policy set"
    return [f"error: the policy set cannot be used ({exc.kind}: {where}); fix the policy files"]


def _masking(exc: BaseException, _args: argparse.Namespace) -> list[str]:
    return [f"error: a masking strategy cannot be built ({exc}); check the policies' masking"]


def _system(exc: BaseException, _args: argparse.Namespace) -> list[str] | None:
    if not isinstance(exc, OSError):
        return None
    if exc.filename is not None:  # a state folder, a key file: a path of ours, not a value
        return [f"error: cannot use {exc.filename} ({exc.strerror}); check it and its "
                "permissions"]
    if exc.errno in _BIND_ERRORS:
        return [f"error: cannot listen ({exc.strerror}); choose another --host/--port, or "
                "stop what holds the address"]
    return None  # another system error: unexpected, keep the traceback


def _audit(exc: BaseException, _args: argparse.Namespace) -> list[str]:
    return [f"error: {exc}"]  # the audit package's messages name keys and files, no values


#: (exception type, what to say); first match wins
FAILURES: Final[Sequence[tuple[type[BaseException], Explain]]] = (
    (ConfigError, _config),
    (StoreNotInitialised, _not_initialised),
    (KeyMismatch, _key_mismatch),
    (AuditUnavailable, _unreachable),
    (PolicyLoadError, _policy),
    (ReloadRefused, _refused),
    (MaskingConfigError, _masking),
    (AuditError, _audit),
    (OSError, _system),
)


def explain(exc: BaseException, args: argparse.Namespace) -> list[str] | None:
    """The lines that tell what to fix, or None for a failure nobody expected."""
    for kind, say in FAILURES:
        if isinstance(exc, kind):
            return say(exc, args)
    return None


def reported(exc: BaseException, args: argparse.Namespace) -> bool:
    """Print what to fix on stderr and say True; False (nothing printed) for a failure
    nobody expected, which the caller lets through as a traceback."""
    lines = explain(exc, args)
    if lines is None:
        return False
    for line in lines:
        # one write per line: the workers of `serve --workers N` and their supervisor
        # share stderr, and print()'s separate newline let another process's log line
        # land inside this one
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return True
