"""Record-state rules decided with one call (issue 11, branch ``i11-pol``): a top-level
``equals``/``set``/``unset`` condition compiled to one function, and a policy of one
escalation rule evaluated without the loop over a list of rules - deciding exactly as
the general path does, on frozen (archived), restricted and ordinary records and on
values of every other type."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from policies import PolicySet
from policies.compile import _condition, _condition_general, compile_policy
from policies.compiled import CompiledPolicy
from policies.state import NO_STATE, record_state
from service.emulators import billbee, keycom
from tests.policies import masker_before

VALUES: list[Any] = [
    2, 2.0, "2", True, False, 1, 0, None, "", "x", [], [2], {}, {"b": 2}, 2**60, -2,
]
TESTS: list[Any] = [
    "set", "unset", {"equals": 2}, {"equals": True}, {"equals": "2"}, {"equals": 2.0},
    {"equals": None}, {"equals": ""}, {"equals": [2]}, {"equals": {"b": 2}},
    {"in": [1, 2]}, {"in": ["2", None]},
]  # fmt: skip


def _records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}, {"other": 2}]
    for value in VALUES:
        out.append({"a": value})
        out.append({"a": {"b": value}})
        out.append({"a": value, "other": value})
    return out


@pytest.mark.parametrize("path", ["a", "a.b"])
def test_rule_equals(path: str) -> None:
    """Each condition, compiled, decides as the general getter-then-test path on every
    record (a member absent, null, of another type, nested or not)."""
    parts = path.split(".")
    for test in TESTS:
        fast, general = _condition(parts, test), _condition_general(parts, test)
        for record in _records():
            assert fast(record) is general(record), (path, test)


def _calls(fn: Callable[[], object]) -> int:
    """How many Python functions one call of ``fn`` runs (``fn`` itself not counted)."""
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count - 1


def test_an_equality_on_a_field_is_one_call(policy_set: PolicySet) -> None:
    """keycom's ``restricted_type_id: {equals: 2}`` and billbee's ``ArchivedAt: set``
    run one function per record (the getter and the comparison were two more)."""
    restricted = policy_set["keycom"].escalate_rules[0].test
    archived = policy_set["billbee"].deny_rules[0].test
    record = keycom.generate(100001)
    plain = billbee.generate(100001)
    assert _calls(lambda: restricted(record)) == 1
    assert _calls(lambda: archived(plain)) == 1


def _general_state(policy: CompiledPolicy, record: dict[str, Any] | None) -> Any:
    state = masker_before.record_state(policy, record)
    return dict(state.escalate), dict(state.raised_by), state.rules


def test_a_single_rule_state_is_the_general_one(policy_set: PolicySet) -> None:
    """keycom's one rule: restricted (type 2), ordinary, and odd values of the field;
    billbee's frozen (archived) records have no escalation rule: no state either way;
    an unknown record (None) fails closed through the general loop."""
    keycom_policy, billbee_policy = policy_set["keycom"], policy_set["billbee"]
    assert keycom_policy.single_rule is not None
    assert billbee_policy.single_rule is None  # its rule denies, it does not escalate
    records = [keycom.generate(100000 + i) for i in range(300)]
    records += [{**records[0], "restricted_type_id": v} for v in VALUES]
    records.append({k: v for k, v in records[0].items() if k != "restricted_type_id"})
    assert any(r.get("restricted_type_id") == 2 for r in records[:300])  # ~2 % generated
    for record in [*records, None]:
        state = record_state(keycom_policy, record)
        assert (dict(state.escalate), dict(state.raised_by), state.rules) == _general_state(
            keycom_policy, record
        )
    for number in range(100000, 100100):
        frozen = {**billbee.generate(number), "ArchivedAt": "2026-01-01T00:00:00"}
        assert record_state(billbee_policy, frozen) is NO_STATE
        assert billbee_policy.deny_rules[0].test(frozen) is True


def test_two_rules_keep_the_loop(policy_set: PolicySet) -> None:
    """A policy of two escalation rules is evaluated by the loop, as before."""
    two = {
        "system": "two", "mode": "patch", "id_field": "id",
        "masking": {"editor": {"public": "clear", "internal": "clear",
                               "personal": "partial", "restricted": "redact"}},
        "rules": [
            {"name": "one", "when": {"a": {"equals": 2}}, "escalate": {"personal": "restricted"},
             "edit_roles": ["privacy_officer"], "problem": "record_restricted"},
            {"name": "other", "when": {"b": "set"}, "escalate": {"internal": "personal"},
             "edit_roles": ["privacy_officer"], "problem": "record_restricted"},
        ],
        "fields": {"id": {"type": "integer", "sensitivity": "internal"}},
    }  # fmt: skip
    policy = compile_policy(two)
    assert policy.single_rule is None
    for record in [{"a": 2}, {"b": 1}, {"a": 2, "b": 1}, {"a": "2"}, {}]:
        state = record_state(policy, record)
        assert (dict(state.escalate), dict(state.raised_by), state.rules) == _general_state(
            policy, record
        )
