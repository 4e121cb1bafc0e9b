"""A count of units of work under way, and a way to wait until there are none.

The shutdown waits on two of them: the HTTP requests being answered
(:class:`service.shutdown.Lifecycle`) and the changes holding a customer's lock
(:class:`service.gateway.Gateway`), so that no change loses its audit outcome.
"""

from __future__ import annotations

import asyncio


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._hold = _Hold(self)

    @property
    def count(self) -> int:
        return self._count

    def hold(self) -> _Hold:
        """Count the ``async with`` body as one unit under way (one context manager
        object for every holder: it keeps no state of its own, so nothing is built per
        request)."""
        return self._hold

    def enter(self) -> None:
        """One unit more under way (pair with :meth:`leave` in a ``finally``; a hot path
        that would rather not await a context manager's two coroutines)."""
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing is under way (bound it with ``asyncio.timeout``)."""
        await self._idle.wait()


class _Hold:
    __slots__ = ("_of",)

    def __init__(self, of: InFlight) -> None:
        self._of = of

    async def __aenter__(self) -> None:
        self._of.enter()

    async def __aexit__(self, *_exc: object) -> None:
        self._of.leave()
