"""A failure that must not stop the caller is swallowed with one log line, never silently.

The line names what failed and the exception's type, never its message: a store's or a
hook's message may quote a value, and nothing personal may reach a log line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def swallowed(
    log: logging.Logger,
    what: str,
    *kinds: type[BaseException],
    level: int = logging.WARNING,
) -> Iterator[None]:
    """Swallow an exception of ``kinds`` (default: any ``Exception``) raised in the block,
    logging ``"<what> failed (<type>)"`` at ``level``."""
    caught = kinds or (Exception,)
    try:
        yield
    except caught as exc:
        log.log(level, "%s failed (%s)", what, type(exc).__name__)
