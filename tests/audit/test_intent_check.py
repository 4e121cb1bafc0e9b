"""audit/entries.py ``check_intent``: its fast path (every field well-formed) accepts
exactly what the slow path (each field checked with a message) accepts, and the
gateway's own intents - roles, system, purpose and action as the vocabulary's StrEnums
(``str`` subclasses) - take the fast path (issue 11: they all went the slow way)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import pytest

import audit.entries as entries
from audit import Intent
from audit.errors import InvalidAuditInput
from common.vocabulary import Action, Purpose, Role, System


class _Text(str):
    """A str subclass that is not an enum."""


class _Other(StrEnum):
    ONE = "one"
    EMPTY = ""


def _gateway_intent(**changes: Any) -> Intent:
    """An intent as service.change_steps.intent_for makes one (synthetic values)."""
    intent = Intent(
        actor="editor-1",
        roles=(Role.EDITOR, Role.PRIVACY_OFFICER),
        system=System.KEYCOM,
        customer_id="c-1",
        purpose=Purpose.CUSTOMER_SERVICE,
        request_id="r" * 32,
        action=Action.UPDATE,
        changed=("email",),
        before={"email": "a"},
        after={"email": "b"},
        protected={"email": "personal"},
        policy_version="1",
        retention_days=30,
    )
    return dataclasses.replace(intent, **changes) if changes else intent


#: per field, values to try: good ones (str, StrEnum, str subclass) and bad ones
_VALUES: dict[str, tuple[object, ...]] = {
    "actor": ("a", _Text("a"), _Other.ONE, "", _Other.EMPTY, _Text(""), None, 1, b"a"),
    "roles": (
        (),
        (Role.EDITOR,),
        ("editor", _Text("x")),
        ["editor"],
        frozenset({"editor"}),
        "editor",
        ("editor", 1),
        (None,),
        (b"x",),
        None,
    ),
    "system": ("keycom", System.BILLBEE, _Text("s"), "", System.KEYCOM, 3, None),
    "customer_id": ("c", _Text("c"), "", None, 7),
    "purpose": (None, Purpose.BILLING, "billing", _Text("p"), "", _Other.EMPTY, 1),
    "request_id": ("r", _Other.ONE, "", None, 1.5),
    "action": (Action.UPDATE, "update", "read", "nonsense", _Text("update"), None, 1),
    "changed": ((), ("a", _Text("b")), ["a"], ("a", None), "a", None),
    "before": ({}, {"a": 1}, MappingProxyType({"a": 1}), [], None),
    "after": ({}, {"a": 1}, MappingProxyType({}), "x", None),
    "protected": ({}, MappingProxyType({"a": "personal"}), [], None),
    "policy_version": ("1", "", _Text("v"), System.KEYCOM, None, 1),
    "retention_days": (None, 1, 30, 0, -1, True, 1.0, "30"),
}


def _intents() -> Iterator[Intent]:
    """Each value of each field on the gateway's intent, and some pairs of them."""
    for name, values in _VALUES.items():
        for value in values:
            yield _gateway_intent(**{name: value})
    names = list(_VALUES)
    for first, second in itertools.combinations(names, 2):
        for a, b in itertools.product(_VALUES[first][:3], _VALUES[second][-2:]):
            yield _gateway_intent(**{first: a, second: b})


def _verdict(check: Any, intent: object) -> str | None:
    try:
        check(intent)
    except InvalidAuditInput as exc:
        return str(exc)
    return None


def test_the_fast_path_accepts_and_refuses_what_the_slow_path_does() -> None:
    seen = 0
    for intent in _intents():
        slow = _verdict(entries._check_intent_slowly, intent)
        assert _verdict(entries.check_intent, intent) == slow
        seen += 1
    assert seen > 300
    assert _verdict(entries.check_intent, object()) == "expected an audit.Intent"


def test_the_fast_path_never_accepts_what_the_slow_path_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever the fast path lets through (no slow call), the slow path accepts too."""
    slowly = entries._check_intent_slowly
    calls: list[object] = []
    monkeypatch.setattr(entries, "_check_intent_slowly", calls.append)
    fast = 0
    for intent in _intents():
        calls.clear()
        entries.check_intent(intent)
        if not calls:
            fast += 1
            assert _verdict(slowly, intent) is None
    assert fast > 20


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"purpose": None, "retention_days": None},
        {"actor": _Text("a"), "policy_version": _Text("v"), "changed": (_Text("email"),)},
        {"roles": ("editor",), "system": "keycom", "purpose": "billing", "action": "update"},
    ],
    ids=["gateway", "no-purpose", "str-subclasses", "plain-str"],
)
def test_a_well_formed_intent_takes_the_fast_path(
    monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(entries, "_check_intent_slowly", calls.append)
    entries.check_intent(_gateway_intent(**changes))
    assert calls == []


def test_a_malformed_intent_still_goes_the_slow_way(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(entries, "_check_intent_slowly", calls.append)
    malformed: list[dict[str, Any]] = [
        {"actor": _Other.EMPTY},
        {"roles": (Role.EDITOR, 1)},
        {"before": []},
    ]
    for changes in malformed:
        entries.check_intent(_gateway_intent(**changes))
    assert len(calls) == 3
