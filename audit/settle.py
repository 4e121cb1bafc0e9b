"""Reads that see this process's own queued outcomes.

``AuditLog.finish(durable=False)`` returns before its outcome is written. So that a
read through the same audit log still sees every outcome ``finish`` returned (a caller
answered 200 looks its change up at once), the log's reads first wait for the outcomes
queued so far: :class:`Queued` counts them, and wraps each read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Queued:
    """The outcomes queued and not yet written (or failed)."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._pending: set[asyncio.Future[str]] = set()
        self._flush = flush  # wakes the writer for them (they may linger: audit.writer)

    def add(self, written: asyncio.Future[str]) -> None:
        """``written`` is queued; :meth:`discard` it once it is done (no done callback:
        the writer that answers it says so, :attr:`audit.batch.Pending.settled`)."""
        self._pending.add(written)

    def discard(self, written: asyncio.Future[str]) -> None:
        self._pending.discard(written)

    async def settle(self) -> None:
        """Until every outcome queued so far is written or has failed; at once when none
        is queued."""
        if self._pending:
            self._flush()
            await asyncio.wait(list(self._pending))

    def before(self, read: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """``read``, after :meth:`settle`."""

        async def settled(*args: P.args, **kwargs: P.kwargs) -> R:
            await self.settle()
            return await read(*args, **kwargs)

        return settled

    def before_iter(
        self, read: Callable[P, AsyncIterator[R]]
    ) -> Callable[P, AsyncIterator[R]]:
        """An iterating ``read``, after :meth:`settle`."""

        async def settled(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
            await self.settle()
            async for item in read(*args, **kwargs):
                yield item

        return settled
