"""service.json_codec: orjson where it gives the same values, json where it would not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.json_codec import dump_bytes, loads_strict
from service.upstreams.answers import parse_json
from tests.values import leaves


@pytest.mark.parametrize(
    "raw",
    [
        b'{"Id": 12345678901234567890123, "Name": "x"}',  # beyond 64 bits: stays an int
        b'{"Id": 9223372036854775807}',
        b'{"a": [1, 2.5, -0.0, 1e-7, true, null, "\\u00e4\\u20ac"]}',
        b'["\\ud800"]',  # a lone surrogate: json reads it, so it is read
        b"{}",
    ],
)
def test_reads_the_values_json_reads(raw: bytes) -> None:
    got = loads_strict(raw)
    assert got == json.loads(raw)
    assert [type(v) for v in leaves(got)] == [type(v) for v in leaves(json.loads(raw))]


@pytest.mark.parametrize("raw", [b"[NaN]", b'{"a": Infinity}', b"[-Infinity]", b"{", b"nope"])
def test_refuses_what_is_not_strict_json(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads_strict(raw)
    with pytest.raises(ValueError):
        parse_json(raw)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": ["x", None, True, 2.5], "c": {"ä": "€"}},
        {"big": 2**70},  # orjson refuses it; json writes it
        {1: "int key"},  # orjson refuses a key that is not a str
        ("a", "tuple"),
    ],
)
def test_writes_what_json_reads_back_as_json_would(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    assert json.loads(dump_bytes(value)) == expected


