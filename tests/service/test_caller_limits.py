import pytest

from service.caller_limits import CallerLimiter
from service.errors import RateLimited


def test_no_rate_means_no_limit() -> None:
    limiter = CallerLimiter(None, 1)
    for _ in range(1000):
        limiter.check("a")


def test_burst_then_refusal_with_retry_after() -> None:
    limiter = CallerLimiter(0.1, 3)
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimited) as exc:
        limiter.check("a")
    assert exc.value.retry_after is not None and exc.value.retry_after >= 1
    limiter.check("b")  # callers do not share a budget


def test_the_number_of_callers_kept_is_bounded() -> None:
    limiter = CallerLimiter(0.1, 1, max_callers=3)
    for name in ("a", "b", "c", "d"):
        limiter.check(name)
    assert len(limiter._buckets) == 3
    assert "a" not in limiter._buckets  # the least recently seen went first
