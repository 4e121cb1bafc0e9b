"""Billbee's limit: 2 requests per second per (API key, user) and endpoint."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable


class RateLimiter:
    """A sliding one-second window. Refused requests do not use up the budget.

    ``enabled`` and ``retry_after`` can be switched at any time (construction, or
    ``POST /_emulator/settings``).
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        retry_after: bool = True,
        per_second: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.retry_after = retry_after
        self.per_second = per_second
        self._clock = clock
        self._seen: dict[Hashable, deque[float]] = {}

    def check(self, key: Hashable) -> float | None:
        """``None`` when the request may pass (and is counted), else seconds to wait."""
        if not self.enabled:
            return None
        now = self._clock()
        window = self._seen.setdefault(key, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.per_second:
            return max(0.0, 1.0 - (now - window[0]))
        window.append(now)
        return None

    @staticmethod
    def header_value(wait: float) -> str:
        """``Retry-After`` in whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))

    def reset(self) -> None:
        self._seen.clear()
