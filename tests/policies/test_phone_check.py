"""The ``phone`` format checked by one pattern match (issue 11, branch ``i11-pol``): the
same decisions as the pattern plus a count of the digits, and no Python code run per
character."""

from __future__ import annotations

import random
import sys
from types import FrameType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policies.validate import PHONE, _is_phone

ALPHABET = "0123456789 ()./-+x\u0661\u00b2\n"


def _before(value: str) -> bool:
    """The check as it was: the pattern, then at least four digits counted in Python."""
    return PHONE.fullmatch(value) is not None and sum(c.isdigit() for c in value) >= 4


def test_the_phone_check_decides_as_before() -> None:
    rng = random.Random(11)
    values = ["", "+", "1234", "+1234", "123", "+49 30 1234567", "+358 40 7654321",
              "(0)30/12.34-5", "+" + "1" * 32, "1" * 32, "1" * 33, "12 34", "+ 1 2 3",
              "++1234", "12\u0661\u00b234", "1234\n", "call me", "a1b2c3d4"]  # fmt: skip
    for _ in range(20000):
        values.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 36))))
    for value in values:
        assert _is_phone(value) is _before(value), len(value)


@given(st.text(alphabet=ALPHABET, max_size=40))
def test_the_phone_check_decides_as_before_on_any_text(value: str) -> None:
    assert _is_phone(value) is _before(value)


def test_the_phone_check_runs_no_python_per_character() -> None:
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        _is_phone("+358 40 7654321")
    finally:
        sys.setprofile(None)
    assert calls == 1  # _is_phone itself; the digits were a generator's 15 resumptions
