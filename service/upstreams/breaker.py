"""A circuit breaker per upstream: stop calling an upstream that keeps failing.

closed --(N consecutive failures)--> open --(reset_seconds pass)--> half_open
half_open --(the one probe succeeds)--> closed;  half_open --(the probe fails)--> open

A *failure* is what says the upstream is unwell: a 5xx, a timeout, a reset connection,
a malformed answer. A 4xx is an answer (the upstream works; the request was wrong) and
counts as a success. The breaker knows nothing of HTTP: the caller classifies.

Pure apart from the clock, which is injected so that tests need no sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]
#: called with the new state on every transition
OnChange = Callable[[BreakerState], None]


class CircuitBreaker:
    """Counts consecutive failures of one upstream and refuses calls while open.

    ``on_change(new_state)`` is called on every transition (the metrics layer sets a
    gauge from it, closing over the system name); it may be set after construction.
    An exception from it is not swallowed: the hook must not fail.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_opened_at",
        "_probe_in_flight",
        "_state",
        "name",
        "on_change",
        "reset_seconds",
        "threshold",
    )

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        reset_seconds: float = 30.0,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("breaker threshold must be at least 1")
        if reset_seconds < 0:
            raise ValueError("breaker reset_seconds must not be negative")
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.on_change = on_change
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose time is up reads as half_open."""
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_seconds:
            self._transition("half_open")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Ask to make one call. ``True``: go ahead and report its result (exactly one of
        ``record_success``/``record_failure``/``release``). ``False``: do not call."""
        if self._state == "closed":  # the usual case, without the property's call
            return True
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.reset_seconds - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._probe_in_flight = False
        self._failures = 0
        if self._state != "closed":
            self._transition("closed")

    def record_failure(self) -> None:
        self._probe_in_flight = False
        self._failures += 1
        if self._state == "half_open" or (
            self._state == "closed" and self._failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._transition("open")
        elif self._state == "open":
            # A call let through before the breaker opened has failed late: keep the
            # breaker open from now on.
            self._opened_at = self._clock()

    def release(self) -> None:
        """A permitted call ended without telling anything (it was cancelled): free the
        half-open probe slot so that another call may probe."""
        self._probe_in_flight = False

    def _transition(self, new: BreakerState) -> None:
        old = self._state
        if old == new:
            return
        self._state = new
        if new == "closed":
            self._failures = 0
        callback = self.on_change
        if callback is not None:
            callback(new)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(name={self.name!r}, state={self._state!r}, "
            f"failures={self._failures}, threshold={self.threshold})"
        )
