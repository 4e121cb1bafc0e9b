"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.upstreams.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


Changes = list[BreakerState]


def make(threshold: int = 3, reset: float = 10.0) -> tuple[CircuitBreaker, Clock, Changes]:
    clock = Clock()
    changes: Changes = []
    breaker = CircuitBreaker(
        "probe",
        threshold=threshold,
        reset_seconds=reset,
        clock=clock,
        on_change=changes.append,
    )
    return breaker, clock, changes


def fail(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        assert breaker.allow()
        breaker.record_failure()


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _, changes = make(threshold=3)
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker, 1)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert changes == ["open"]


def test_a_success_resets_the_count() -> None:
    breaker, _, _ = make(threshold=3)
    fail(breaker, 2)
    assert breaker.allow()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 2


def test_half_open_after_reset_lets_one_probe_through() -> None:
    breaker, clock, _ = make(threshold=1, reset=10.0)
    fail(breaker, 1)
    clock.now += 9.9
    assert breaker.state == "open"
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time


def test_successful_probe_closes() -> None:
    breaker, clock, changes = make(threshold=1, reset=1.0)
    fail(breaker, 1)
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert changes == ["open", "half_open", "closed"]


def test_failed_probe_reopens_for_a_full_period() -> None:
    breaker, clock, _ = make(threshold=2, reset=5.0)
    fail(breaker, 2)
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 4.9
    assert breaker.state == "open"
    clock.now += 0.1
    assert breaker.state == "half_open"


def test_released_probe_frees_the_slot() -> None:
    breaker, clock, _ = make(threshold=1, reset=1.0)
    fail(breaker, 1)
    clock.now += 1.0
    assert breaker.allow()
    breaker.release()
    assert breaker.state == "half_open"
    assert breaker.allow()


def test_on_change_may_be_set_later() -> None:
    breaker = CircuitBreaker("x", threshold=1, reset_seconds=1.0)
    seen: list[BreakerState] = []
    breaker.on_change = seen.append
    assert breaker.allow()
    breaker.record_failure()
    assert seen == ["open"]


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, -1.0)])
def test_bad_settings_are_refused(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="breaker"):
        CircuitBreaker("x", threshold=threshold, reset_seconds=reset)


@given(
    st.lists(
        st.sampled_from(["call_ok", "call_fail", "call_cancel", "wait_short", "wait_long"]),
        max_size=60,
    )
)
def test_breaker_against_a_model(ops: list[str]) -> None:
    """Any sequence of calls and waits: the breaker matches a plain model of the rules."""
    clock = Clock()
    breaker = CircuitBreaker("m", threshold=3, reset_seconds=10.0, clock=clock)
    state, failures, opened_at = "closed", 0, 0.0
    for op in ops:
        if op.startswith("wait"):
            clock.now += 1.0 if op == "wait_short" else 10.0
            continue
        if state == "open" and clock.now - opened_at >= 10.0:
            state = "half_open"
        allowed = breaker.allow()
        assert allowed == (state != "open"), (op, state)
        if not allowed:
            continue
        if op == "call_ok":
            breaker.record_success()
            state, failures = "closed", 0
        elif op == "call_fail":
            breaker.record_failure()
            failures += 1
            if state == "half_open" or failures >= 3:
                state, opened_at = "open", clock.now
        else:
            breaker.release()
        assert breaker.state == state
