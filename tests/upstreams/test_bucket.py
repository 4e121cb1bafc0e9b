"""Token bucket arithmetic on an injected clock; one real-time run of acquire()."""

from __future__ import annotations

import asyncio

import pytest

from service.upstreams.bucket import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_token_per_interval() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, burst=2, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)  # queued behind the previous one


def test_tokens_refill_with_time_up_to_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(4.0, burst=1, clock=clock)
    assert bucket.reserve() == 0.0
    clock.now += 10.0  # long idle: still only one token saved
    assert bucket.available == pytest.approx(1.0)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.25)


def test_reservations_never_exceed_rate_over_any_window() -> None:
    clock = Clock()
    rate, burst = 2.0, 1
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    starts = []
    for i in range(20):
        clock.now = i * 0.05  # callers arrive much faster than the rate
        starts.append(clock.now + bucket.reserve())
    for i, start in enumerate(starts):
        in_window = [s for s in starts if start <= s < start + 1.0 - 1e-9]
        assert len(in_window) <= rate * 1.0 + burst - 1, i


async def test_acquire_sleeps_the_reserved_time() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    clock = Clock()
    bucket = TokenBucket(10.0, burst=1, clock=clock, sleep=fake_sleep)
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == pytest.approx(0.1)
    assert slept == [pytest.approx(0.1)]


async def test_concurrent_acquires_queue_one_interval_apart() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    bucket = TokenBucket(50.0, burst=1, clock=Clock(), sleep=fake_sleep)
    await asyncio.gather(*(bucket.acquire() for _ in range(5)))
    assert slept == [pytest.approx(0.02 * i) for i in range(1, 5)]


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst)
