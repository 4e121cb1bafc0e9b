"""A failure that must not stop the caller is swallowed with one log line, never silently.

The line names what failed and the exception's type, never its message: a store's or a
hook's message may quote a value, and nothing personal may reach a log line.
"""

from __future__ import annotations

import contextlib
import logging
from types import TracebackType


def swallowed(
    log: logging.Logger,
    what: str,
    *kinds: type[BaseException],
    level: int = logging.WARNING,
) -> _Swallowed:
    """Swallow an exception of ``kinds`` (default: any ``Exception``) raised in the block,
    logging ``"<what> failed (<type>)"`` at ``level``."""
    return _Swallowed(log, what, kinds or (Exception,), level)


class _Swallowed(contextlib.AbstractContextManager[None]):
    """:func:`swallowed`'s context manager: a class, not a ``contextmanager`` generator
    (it runs per change on PostgreSQL, around each lock release: issue 11)."""

    __slots__ = ("_kinds", "_level", "_log", "_what")

    def __init__(
        self, log: logging.Logger, what: str, kinds: tuple[type[BaseException], ...], level: int
    ) -> None:
        self._log, self._what, self._kinds, self._level = log, what, kinds, level

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is None or not issubclass(exc_type, self._kinds):
            return False
        self._log.log(self._level, "%s failed (%s)", self._what, exc_type.__name__)
        return True
