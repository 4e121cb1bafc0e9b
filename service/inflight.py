"""A count of units of work under way, and a way to wait until there are none.

The shutdown waits on two of them: the HTTP requests being answered
(:class:`service.shutdown.Lifecycle`) and the changes holding a customer's lock
(:class:`service.gateway.Gateway`), so that no change loses its audit outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Count the ``async with`` body as one unit under way."""
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing is under way (bound it with ``asyncio.timeout``)."""
        await self._idle.wait()
