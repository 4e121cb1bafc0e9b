"""The retry policy as a table: which attempts may be sent again (issue 8, item 14)."""

from __future__ import annotations

import pytest

from service.upstreams.retry import STATUS_FATES, Fate, may_retry

#: (fate, GET, PUT, PATCH): may the attempt be sent again?
TABLE = [
    (Fate.UNSENT, True, True, True),  # nothing reached the upstream
    (Fate.REFUSED, True, True, False),  # 503: not taken; a PATCH stays conservative
    (Fate.MAYBE_APPLIED, True, False, False),  # a write may still land: never re-sent
    (Fate.FAILED, False, False, False),
]


@pytest.mark.parametrize(("fate", "get", "put", "patch"), TABLE)
def test_may_retry(fate: Fate, get: bool, put: bool, patch: bool) -> None:
    assert [may_retry(fate, m) for m in ("GET", "PUT", "PATCH")] == [get, put, patch]


def test_the_table_covers_every_fate() -> None:
    assert {row[0] for row in TABLE} == set(Fate)


def test_only_a_503_is_a_refusal_and_a_proxys_502_504_may_have_been_applied() -> None:
    assert STATUS_FATES == {503: Fate.REFUSED, 502: Fate.MAYBE_APPLIED, 504: Fate.MAYBE_APPLIED}
    assert 500 not in STATUS_FATES  # final: TimeLog's "could not be updated"
