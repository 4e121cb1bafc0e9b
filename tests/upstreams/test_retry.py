"""The retry policy as a table: which attempts may be sent again (issue 8, item 14), and
the pure per-attempt decision the call loop follows - send again after what delay, or
stop (issue 10, item 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.upstreams.retry import (
    RETRY_TABLE,
    STATUS_FATES,
    Fate,
    RetryPolicy,
    Step,
    may_retry,
    next_step,
)

#: (fate, GET, PUT, PATCH): may the attempt be sent again?
TABLE = [
    (Fate.UNSENT, True, True, True),  # nothing reached the upstream
    (Fate.REFUSED, True, True, False),  # 503: not taken; a PATCH stays conservative
    (Fate.RATE_LIMITED, True, True, True),  # 429: taken for nothing, come back later
    (Fate.MAYBE_APPLIED, True, False, False),  # a write may still land: never re-sent
    (Fate.FAILED, False, False, False),
]
POLICY = RetryPolicy(max_retries=2, backoff_max_seconds=1.0)


@pytest.mark.parametrize(("fate", "get", "put", "patch"), TABLE)
def test_may_retry(fate: Fate, get: bool, put: bool, patch: bool) -> None:
    assert [may_retry(fate, m) for m in ("GET", "PUT", "PATCH")] == [get, put, patch]


def test_the_table_covers_every_fate() -> None:
    assert {row[0] for row in TABLE} == set(Fate) == set(RETRY_TABLE)


def test_only_a_503_is_a_refusal_and_a_proxys_502_504_may_have_been_applied() -> None:
    assert STATUS_FATES == {503: Fate.REFUSED, 502: Fate.MAYBE_APPLIED, 504: Fate.MAYBE_APPLIED}
    assert 500 not in STATUS_FATES  # final: TimeLog's "could not be updated"


@pytest.mark.parametrize(("fate", "get", "put", "patch"), TABLE)
def test_next_step_follows_the_table_until_the_retries_run_out(
    fate: Fate, get: bool, put: bool, patch: bool
) -> None:
    for method, allowed in (("GET", get), ("PUT", put), ("PATCH", patch)):
        steps = [next_step(POLICY, fate, method, n, jitter=0.0) for n in range(4)]
        assert [s.retry for s in steps] == [allowed, allowed, False, False], method


def test_a_write_that_may_have_been_applied_is_never_sent_again() -> None:
    for method in ("PUT", "PATCH", "POST", "DELETE"):
        for retries in range(3):
            step = next_step(POLICY, Fate.MAYBE_APPLIED, method, retries, jitter=0.5)
            assert step == Step(False)


def test_the_backoff_doubles_with_equal_jitter_and_is_capped() -> None:
    delays = [next_step(POLICY, Fate.UNSENT, "GET", n, jitter=0.0).delay for n in range(2)]
    assert delays == [0.05, 0.1]  # base 0.1 s x 2^n, the lower half of equal jitter
    assert next_step(POLICY, Fate.UNSENT, "GET", 0, jitter=0.999999).delay == pytest.approx(0.1)
    wide = RetryPolicy(max_retries=20, backoff_max_seconds=1.0)
    assert next_step(wide, Fate.UNSENT, "GET", 10, jitter=0.0).delay == 1.0


def test_a_429_waits_as_asked_within_the_bound_else_stops_at_once() -> None:
    assert next_step(POLICY, Fate.RATE_LIMITED, "PATCH", 0, jitter=0.0, retry_after=0.3) == Step(
        True, 0.3
    )
    # asked to wait longer than the bound: stop now, telling how long was asked for
    assert next_step(POLICY, Fate.RATE_LIMITED, "GET", 0, jitter=0.0, retry_after=5.0) == Step(
        False, 5.0
    )
    # no Retry-After: a backoff no shorter than the pacing interval
    assert next_step(POLICY, Fate.RATE_LIMITED, "GET", 0, jitter=0.0, floor=0.25) == Step(
        True, 0.25
    )
    assert not next_step(POLICY, Fate.RATE_LIMITED, "GET", 2, jitter=0.0, retry_after=0.1).retry


@given(
    st.sampled_from(list(Fate)),
    st.sampled_from(["GET", "PUT", "PATCH"]),
    st.integers(0, 10),
    st.floats(0.0, 0.999999),
    st.none() | st.floats(0.0, 100.0),
)
def test_a_retry_never_waits_beyond_the_bound_nor_exceeds_max_retries(
    fate: Fate, method: str, retries: int, jitter: float, retry_after: float | None
) -> None:
    step = next_step(POLICY, fate, method, retries, jitter=jitter, retry_after=retry_after)
    if step.retry:
        assert retries < POLICY.max_retries
        assert 0.0 <= step.delay <= POLICY.backoff_max_seconds
        assert may_retry(fate, method)
