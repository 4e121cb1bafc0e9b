"""A rate limit per caller (429 ``rate_limited``), apart from the upstreams' own limits.

One token bucket per principal name, created on first use and kept in a bounded LRU so
that many distinct JWT subjects cannot grow memory without end. A caller over its limit
is refused at once with ``Retry-After``; it is never made to wait inside the gateway.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from service.errors import RateLimited
from service.upstreams.bucket import TokenBucket

MAX_CALLERS = 10_000


class CallerLimiter:
    """``rate`` requests per second per caller, ``burst`` at once; ``rate=None``: no limit."""

    def __init__(self, rate: float | None, burst: int, *, max_callers: int = MAX_CALLERS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, caller: str) -> None:
        """Take one request from ``caller``'s budget, or raise RateLimited."""
        if self.rate is None:
            return
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
        available = bucket.available
        if available < 1.0:
            wait = (1.0 - available) / self.rate
            raise RateLimited(
                "this caller is over its request rate; retry later",
                retry_after=max(1, math.ceil(wait)),
            )
        bucket.reserve()
