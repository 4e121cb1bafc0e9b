"""A token bucket that paces calls under an upstream's rate limit.

Reservation based: each ``acquire`` takes a token now, letting the count go negative,
and sleeps until that token would have been there. Concurrent callers are thus served
in the order they asked, each one ``1/rate`` after the previous once the burst is
spent. A caller cancelled while sleeping loses its token: pacing gets slower, never
faster, so the limit still holds.

The clock and the sleep are injected: the arithmetic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("_clock", "_last", "_sleep", "_tokens", "burst", "rate")

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("token bucket rate must be positive")
        if burst < 1:
            raise ValueError("token bucket burst must be at least 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; return how many seconds to wait before using it."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    async def acquire(self) -> float:
        """Wait for a token; return the seconds waited (for metrics and tests)."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)
        return wait

    @property
    def available(self) -> float:
        """Tokens available now (negative: that many callers are already queued)."""
        elapsed = max(0.0, self._clock() - self._last)
        return min(float(self.burst), self._tokens + elapsed * self.rate)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst})"
