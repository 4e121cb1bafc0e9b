"""Access lines written together: one write to stderr per batch, not one per request.

The access line (``service.logs.emit(..., batched=True)``: an INFO line written from a
running event loop) is formatted at once, as every line, and then waits to be written
with the next ones: at most :data:`BATCH_SECONDS` after the first of them, once
:data:`BATCH_LINES` wait, before any other line of the same handler (so the order of the
lines is kept), when serving ends (:func:`flush_all`, ``service.shutdown.run_server``)
and at exit (``logging.shutdown`` flushes every handler). A system call per request,
which also gives the GIL away to the audit store's thread, becomes one per batch
(issue 11). A process killed without a chance to stop (``SIGKILL``) loses at most the
access lines of its last :data:`BATCH_SECONDS`; a forked child forgets the lines its
parent still had waiting (the parent writes them).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Final

#: a batch is written at most this long after its first line ...
BATCH_SECONDS: Final = 0.05
#: ... or once this many lines wait
BATCH_LINES: Final = 64


class LineBatch:
    """The lines of one handler waiting to be written; ``flush`` (the handler's) writes
    them. The handler holds its lock around :meth:`hold` and :meth:`take`."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._lines: list[str] = []
        self._flush = flush
        self._due_on: asyncio.AbstractEventLoop | None = None  # a flush is due there
        _batches.add(self)

    def hold(self, line: str) -> bool:
        """Keep ``line`` (ending in a newline) to be written with the next ones; False:
        write it now, with those waiting (no loop runs in this thread, the lines waiting
        were kept on another loop, or the batch is full)."""
        loop = asyncio._get_running_loop()
        lines = self._lines
        if loop is None or (lines and loop is not self._due_on) or len(lines) >= BATCH_LINES - 1:
            return False
        lines.append(line)
        if self._due_on is not loop:  # no flush due on this loop yet
            self._due_on = loop
            loop.call_later(BATCH_SECONDS, self._due, loop)
        return True

    def take(self, text: str = "") -> str:
        """The lines waiting, then ``text``, as one string; none wait afterwards."""
        if not self._lines:
            return text
        joined = "".join(self._lines) + text
        self._lines.clear()
        return joined

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._due_on is loop:
            self._due_on = None
        self._flush()

    def forget(self) -> None:
        self._lines.clear()
        self._due_on = None


_batches: weakref.WeakSet[LineBatch] = weakref.WeakSet()


def flush_all() -> None:
    """Write every line still waiting, in every batch."""
    for batch in list(_batches):
        batch._flush()


def _after_fork_in_child() -> None:
    for batch in list(_batches):
        batch.forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
