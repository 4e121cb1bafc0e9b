"""common/canonical.py against a frozen copy of itself from before issue 11's `i11-edge`
(tests/common/canonical_before.py): the same text, byte for byte, and the same errors,
for every encoder choice - the audit chain's hashes are taken of this text. And the str
subclasses it remembers (so that a StrEnum is one set lookup) stay bounded."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import common.canonical as now
from common.vocabulary import Action, AuditOutcome, Phase, Problem, Role
from tests.common import canonical_before as before

_CHOICES = [(a, n) for a in (False, True) for n in (False, True)]


class _Str(str):
    pass


class _Loud(str):
    def __str__(self) -> str:
        return "LOUD"


class _Int(int):
    pass


class _Float(float):
    pass


class _Colour(StrEnum):
    RED = "red"
    NON_ASCII = "grün"


_FLOATS = [
    0.0, -0.0, 1.0, -1.5, 1e-4, 9.99e-5, 1e16, 9.999e15, 1e300, -1e300, 5e-324,
    1.7976931348623157e308, math.nan, math.inf, -math.inf, 0.1, 2.5e-7, 123456.789,
]  # fmt: skip
_ODD = [
    "\ud800", "a\udfffb", "\x00\x1f\x7f\u2028é😀", "\x7f", _Str("s"), _Str("é\ud800"),
    _Loud("quiet"), _Int(7), _Float(1.5), _Colour.RED, _Colour.NON_ASCII, Action.UPDATE,
    AuditOutcome.APPLIED, Problem.INTERNAL_ERROR, Phase.INTENT, Role.EDITOR, 2**63, -(2**63),
    2**64, -(2**64) - 1, True, False, None, b"bytes", object(), {1, 2}, frozenset(),
]  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 3, max_value=2**65)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.sampled_from(_FLOATS)
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
    | st.sampled_from(_ODD)
)
_KEYS = st.text(max_size=4) | st.sampled_from([1, 2.5, None, True, "\ud83d", _Str("k")])
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(_KEYS, inner, max_size=5)
    ),
    max_leaves=20,
)


def _outcome(encode: Any, value: object) -> tuple[str, str]:
    try:
        return "text", encode(value)
    except (TypeError, ValueError, OverflowError) as exc:  # json's message too
        return type(exc).__name__, str(exc)


def _assert_same(value: object) -> None:
    for ascii_only, allow_nan in _CHOICES:
        old = before.encoder(ascii_only=ascii_only, allow_nan=allow_nan)
        new = now.encoder(ascii_only=ascii_only, allow_nan=allow_nan)
        assert _outcome(new, value) == _outcome(old, value)
        assert _outcome(
            lambda v, a=ascii_only, n=allow_nan: now.canonical_json(v, ascii_only=a, allow_nan=n),
            value,
        ) == _outcome(old, value)


@settings(max_examples=2000)
@given(_VALUES)
@example({"a": [-0.0, 1e300, {"b": _Colour.NON_ASCII}], "c": (Action.UPDATE, 2.5)})
@example([[[[1.5, "x", _Str("y")]]], {"z": [math.nan]}])
@example({"k": [_Float(2.0), _Int(3), 1e-5]})
def test_the_same_text_and_errors_as_before(value: object) -> None:
    _assert_same(value)


@pytest.mark.parametrize(
    "value",
    _FLOATS + _ODD,
    # stable ids (xdist's workers must collect the same names; an object's repr is not)
    ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(_FLOATS + _ODD)],
)
def test_each_odd_value_alone_and_nested(value: object) -> None:
    for wrapped in (value, [value], {"v": value}, [1, {"v": [value, "x"]}], (value, value)):
        _assert_same(wrapped)


def test_str_subclasses_are_remembered_within_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(now, "_leaves", {str, int, bool, type(None)})  # none met yet
    kinds = [type(f"_Sub{i}", (str,), {}) for i in range(now._SUBCLASSES_KEPT + 20)]
    for kind in kinds:
        value = {"a": [kind("é"), {"b": kind("x")}], "c": kind("y")}
        _assert_same(value)
    assert set(kinds[: now._SUBCLASSES_KEPT]) <= now._leaves  # remembered once met
    assert now._leaves == {str, int, bool, type(None), *kinds[: now._SUBCLASSES_KEPT]}
    # one met past the bound is still written the same, only not remembered
    _assert_same([kinds[-1]("past the bound")])
    assert kinds[-1] not in now._leaves
    # what is not a str is never remembered
    _assert_same([_Int(1), _Float(2.0), b"x", {1, 2}])
    assert len(now._leaves) == 4 + now._SUBCLASSES_KEPT
