"""service.routes.common.parse_json: orjson reads a request body where it gives what the
strict ``json`` reading gives (issue 11); the reference here is that reading itself."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import BadRequest
from service.routes.common import (
    _number,
    _reject_constant,
    _unique_members,
    parse_json,
)


def reference(raw: bytes) -> Any:
    """What parse_json read before it had a fast path."""
    return json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_members,
                      parse_float=_number)


def typed(value: Any) -> Any:
    """The value with the type of every leaf (2 and 2.0 are equal, not the same)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 2.0, "b": [1e3, -0.0, 2.5, {"c": 1E+2}], "d": 1e300}',
        b'{"Id": 12345678901234567890123}',  # beyond 64 bits: an int, as json reads it
        b'{"n": 9007199254740993.0, "m": 9007199254740992.0}',  # past 2**53: stays a float
        b'{"note": "a: b", "x": 1}',  # a colon within a string
        b'{"a": "\\ud800"}',  # a lone surrogate: json reads it
        b'\xef\xbb\xbf{"a": 1}',  # a BOM: json reads it
        b'{"a": {"b": {"c": []}}, "e": [{}, {"f": null}]}',
        b"2.0",
        b"[]",
        b'{"\\u0061": 1}',
    ],
)
def test_reads_what_the_strict_reading_reads(raw: bytes) -> None:
    assert typed(parse_json(raw)) == typed(reference(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b'{"x": {"a": 1, "a": 1}}',
        b'[{"a": 1}, {"b": 1, "b": 2}]',
        b'{"a": 1, "\\u0061": 2}',  # the same name, spelt twice
        b'{"a": "x:y", "a": 1}',  # a duplicate beside a colon in a string
    ],
)
def test_a_member_named_twice_is_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="duplicate keys"):
        parse_json(raw)


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": 1,}', b"{", b'{"a": Infinity}'])
def test_what_is_not_json_is_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json(raw)


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(st.tuples(st.sampled_from(["a", "b", "c:d", "é"]), inner), max_size=4),
    max_leaves=12,
)


def _text(value: Any) -> str:
    """JSON text of ``value``; a list of pairs is an object, names possibly twice."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(f"{json.dumps(k)}:{_text(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return json.dumps(value)


@given(_json)
def test_any_body_reads_as_the_strict_reading_reads_it(value: Any) -> None:
    raw = _text(value).encode()
    try:
        expected = typed(reference(raw))
    except ValueError:  # a duplicate name
        with pytest.raises(BadRequest):
            parse_json(raw)
        return
    assert typed(parse_json(raw)) == expected
