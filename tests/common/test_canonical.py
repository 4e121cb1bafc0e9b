"""Canonical JSON in one place: its rules, and every hash taken of it pinned to the value
it had before the five copies became one (a changed byte would change an audit hash, an
ETag a client holds, a pseudonym, or a policy revision)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS, canonical, entry_hash
from audit.crypto import encode_value
from common.canonical import canonical_json, encoder, reference_json
from common.vocabulary import Action, AuditOutcome, Problem
from policies.compile import policy_version
from policies.masking.base import canonical as masking_input
from service.change_steps import record_etag
from service.upstreams.base import content_tag

RECORD = {"Name": "Jürgen", "Tags": [1, 2.5, None, True], "Nested": {"b": "ä", "a": 1}}

#: an entry body as audit.entries.base_body shapes it, with a sealed pair and non-ASCII
#: (a non-BMP character becomes a surrogate pair in the ASCII text)
ENTRY = {
    "v": 1, "audit_id": "0192f0c4-7d2a-7000-8000-000000000001",
    "time": "2026-11-02T10:00:00.000000Z", "actor": "alice", "roles": ["editor"],
    "system": "keycom", "customer_id": "1042", "purpose": "customer_service",
    "request_id": "req-1", "action": "update", "phase": "intent", "outcome": None,
    "problem_code": None, "upstream_status": None, "upstream_latency_ms": 12.5,
    "intent_id": None, "changed": ["Name", "Email"], "before": {"Name": "Jürgen Ölund"},
    "after": {"Name": "Jürgen Ølund \U0001f600"}, "policy_version": "sha256:ab",
    "reason": None, "target_id": None, "key_id": "k1",
    "sealed": {"before": {"Email": "QUJD"}, "after": {"Email": "REVG"}},
}  # fmt: skip
ENTRY_TEXT = (
    '{"action":"update","actor":"alice","after":{"Name":"J\\u00fcrgen \\u00d8lund'
    ' \\ud83d\\ude00"},"audit_id":"0192f0c4-7d2a-7000-8000-000000000001","before":{"Name":'
    '"J\\u00fcrgen \\u00d6lund"},"changed":["Name","Email"],"customer_id":"1042",'
    '"intent_id":null,"key_id":"k1","outcome":null,"phase":"intent","policy_version":'
    '"sha256:ab","problem_code":null,"purpose":"customer_service","reason":null,'
    '"request_id":"req-1","roles":["editor"],"sealed":{"after":{"Email":"REVG"},"before":'
    '{"Email":"QUJD"}},"system":"keycom","target_id":null,"time":'
    '"2026-11-02T10:00:00.000000Z","upstream_latency_ms":12.5,"upstream_status":null,"v":1}'
)
ENTRY_HASH = "f0bc2c845bfb3c49eed0c99e1d3448820883235f36d91431c9b7ab83ebb195ab"


def test_sorted_compact_and_utf8_unless_ascii_is_asked_for() -> None:
    value = {"b": [1, {"d": None, "c": "é"}], "a": True}
    assert canonical_json(value) == '{"a":true,"b":[1,{"c":"é","d":null}]}'
    assert canonical_json(value, ascii_only=True) == '{"a":true,"b":[1,{"c":"\\u00e9","d":null}]}'


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused_unless_allowed(number: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": number})
    assert canonical_json({"x": number}, allow_nan=True) in (
        '{"x":NaN}', '{"x":Infinity}', '{"x":-Infinity}'
    )  # fmt: skip


def test_a_value_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


@given(st.dictionaries(st.text(max_size=6), st.text(max_size=6) | st.integers(), max_size=6))
def test_key_order_never_changes_the_text(value: dict[str, object]) -> None:
    backwards = dict(reversed(list(value.items())))
    assert canonical_json(backwards) == canonical_json(value)
    assert encoder(ascii_only=True)(backwards) == canonical_json(value, ascii_only=True)


def test_the_audit_chain_form_and_a_known_entry_hash_are_unchanged() -> None:
    assert canonical(ENTRY) == ENTRY_TEXT
    assert entry_hash(1, GENESIS, ENTRY_TEXT) == ENTRY_HASH


def test_the_sealed_plaintext_form_is_unchanged() -> None:
    assert encode_value({"b": "ä", "a": math.nan}, "p") == b'{"a":NaN,"b":"\\u00e4"}'


def test_record_tags_policy_revision_and_masking_input_are_unchanged() -> None:
    assert record_etag(RECORD) == '"927c08c7db66d1f66e5bd4950c90e6f1"'
    assert content_tag(RECORD) == (
        "927c08c7db66d1f66e5bd4950c90e6f1e8ff5407eb95c839f5c265592ca6eaf0"
    )
    assert policy_version({"fields": {"Näme": {"x": 1}}, "version": 2}) == (
        "f805d546b14a98c53fe9a8ab3cd501fb63f71be4cba15e28c32829aa7b45963c"
    )
    assert masking_input({"b": "ä", "a": math.inf}) == b'{"a":Infinity,"b":"\xc3\xa4"}'


# What a JSON value may hold, and what the canonical form must also treat as json does:
# floats of every size (orjson writes 1e-5 as 0.00001), NaN and infinities, integers
# beyond 64 bits, non-ASCII and control characters, lone surrogates, non-str keys,
# tuples, subclasses of str and int.
class _Str(str):
    pass


class _Int(int):
    pass


class _Loud(str):
    """A str subclass that says something else when asked: the text itself is written."""

    def __str__(self) -> str:
        return "LOUD"


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**65)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.text()
    | st.sampled_from(["\ud800", "a\udfffb", "\x00\x1f\x7f\u2028é😀", _Str("s"), _Int(7)])
    # StrEnums (the audit bodies' action, phase, outcome) and a str subclass with a
    # __str__ of its own: written as the text they are, by orjson too (issue 11)
    | st.sampled_from([Action.UPDATE, AuditOutcome.APPLIED, Problem.INTERNAL_ERROR,
                       _Loud("quiet"), _Str("é\ud800")])
)
_KEYS = st.text(max_size=4) | st.sampled_from([1, 2.5, None, True, "\ud83d"])
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


def _outcome(encode: Callable[[object], str], value: object) -> tuple[str, str]:
    try:
        return "text", encode(value)
    except (TypeError, ValueError) as exc:  # the same kind of error, whichever writes it
        return "error", type(exc).__name__


@settings(max_examples=1500)
@given(_VALUES, st.booleans(), st.booleans())
@example({"\x7f": "a\x7fb"}, True, False)  # DEL: json escapes it under ensure_ascii
def test_the_fast_encoder_writes_what_json_writes(
    value: object, ascii_only: bool, allow_nan: bool
) -> None:
    fast = encoder(ascii_only=ascii_only, allow_nan=allow_nan)
    assert _outcome(fast, value) == _outcome(
        lambda v: reference_json(v, ascii_only=ascii_only, allow_nan=allow_nan), value
    )


@pytest.mark.parametrize(
    "value",
    [1e-5, -2.5e-7, 1e16, 1.5e300, 5e-324, math.nan, 2**64, "\ud800", {1: "a"}, (1, 2.0)],
)
def test_values_orjson_writes_differently_get_the_json_text(value: object) -> None:
    for ascii_only in (False, True):
        reference = partial(reference_json, ascii_only=ascii_only, allow_nan=True)
        expected = _outcome(reference, value)
        assert _outcome(encoder(ascii_only=ascii_only, allow_nan=True), value) == expected
