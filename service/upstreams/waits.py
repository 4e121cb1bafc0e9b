"""What the upstream client (:mod:`service.upstreams.client`) waits for, without a timer
or a semaphore object per request: a free connection slot, and an answer within its
deadline.

Per request, ``asyncio.Semaphore`` builds a coroutine and scans its waiters twice, and
``asyncio.timeout`` builds a context manager and starts and stops a timer: about 1.4 and
10 us of CPU per upstream call on uvloop (docs/performance.md, "The event loop's work per
change"). These do the same for a fraction of that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Slots:
    """At most ``limit`` connections in use at once (an ``asyncio.Semaphore`` without
    its cost per call: a waiter is served first come, first served)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """A slot now, if one is free and nobody waits for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """A slot, when one is given back (:meth:`give` hands it over)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed over as the wait was cancelled: the next one's
            elif waiter in self._waiters:  # give() may have dropped it already
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Give a slot back: to the first waiter, if any."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Deadlines:
    """Answers awaited until a deadline, on one timer per pool instead of one per
    request (``asyncio.timeout`` costs ~10 us a call, docs/performance.md). Every
    request of a pool has the same total timeout, so deadlines come in the order the
    requests start: one ``call_at`` for the earliest pending one is enough. An answer
    in time leaves its entry done; done entries are dropped as new ones arrive, from the
    front, and all of them once the queue holds :attr:`COMPACT_AT` entries or twice what
    was pending at the last such drop (a slow request at the front must not keep every
    answer that came after it: a done future holds its answer)."""

    #: entries at which the queue drops its done entries wherever they are
    COMPACT_AT = 256

    def __init__(self) -> None:
        self._queue: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._compact_at = self.COMPACT_AT

    def add(
        self, loop: asyncio.AbstractEventLoop, deadline: float, waiter: asyncio.Future[Any]
    ) -> asyncio.TimerHandle | None:
        """``waiter`` fails with ``TimeoutError`` unless done by ``deadline`` (loop time).
        A deadline earlier than the last one (its request waited for a connection) gets
        a timer of its own, returned: the caller cancels it when done."""
        queue = self._queue
        while queue and queue[0][1].done():
            queue.popleft()
        if len(queue) >= self._compact_at:  # amortised: twice the pending at most
            queue = self._queue = deque(entry for entry in queue if not entry[1].done())
            self._compact_at = max(self.COMPACT_AT, 2 * len(queue))
        if queue and deadline < queue[-1][0]:
            return loop.call_at(deadline, _time_out, waiter)
        queue.append((deadline, waiter))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire, loop, deadline)
        return None

    def pending(self) -> int:
        """Entries queued (done ones not yet dropped included)."""
        return len(self._queue)

    def _expire(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = None
        now = max(loop.time(), when)  # the timer was set for ``when``: that one is due
        queue = self._queue
        while queue:
            deadline, waiter = queue[0]
            if not waiter.done():
                if deadline > now:
                    self._timer = loop.call_at(deadline, self._expire, loop, deadline)
                    return
                _time_out(waiter)
            queue.popleft()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
