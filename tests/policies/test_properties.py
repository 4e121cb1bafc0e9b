"""Properties of the pure parts: merge, decide, validate and mask, on generated input."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import PolicyEngine, PolicySet
from policies.compiled import FieldSpec
from policies.merge import merge_patch
from policies.model import SENSITIVITY_RANK
from tests.policies.conftest import HASH_SALT, PSEUDONYM_KEY, principal

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SYSTEMS = ("billbee", "keycom", "sedona", "timelog")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def _engine() -> PolicyEngine:
    from policies import load_policy_set

    return PolicyEngine(load_policy_set(), pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)


ENGINE = _engine()


def _value(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Valid, non-null values of a field (validation is not what these properties test)."""
    t = spec.type
    if t == "string":
        if spec.enum is not None:
            return st.sampled_from(spec.enum)
        return st.text(alphabet="abcdef+ 0123456789", min_size=0, max_size=spec.max_length or 12)
    if t == "integer":
        return st.sampled_from(spec.enum) if spec.enum else st.integers(-5, 5)
    if t == "number":
        return st.integers(0, 9) | st.floats(0, 10)
    if t == "boolean":
        return st.booleans()
    if t == "date":
        return st.dates().map(lambda d: d.isoformat())
    if t == "datetime":
        return st.datetimes().map(lambda d: d.isoformat())
    if t == "object":
        assert spec.children is not None
        writable = {k: s for k, s in spec.children.items() if not s.read_only}
        return st.fixed_dictionaries({}, optional={k: _value(s) for k, s in writable.items()})
    assert spec.items is not None
    return st.lists(_value(spec.items), max_size=2)


def _patches(system: str, nulls: bool) -> st.SearchStrategy[dict[str, Any]]:
    policy = ENGINE.policies[system]
    fields = {n: s for n, s in policy.fields.items() if not s.read_only}
    return st.fixed_dictionaries(
        {},
        optional={
            n: (_value(s) | st.none()) if nulls and not s.required else _value(s)
            for n, s in fields.items()
        },
    )


def _full_records(system: str) -> st.SearchStrategy[dict[str, Any]]:
    policy = ENGINE.policies[system]
    return st.fixed_dictionaries(
        {n: (st.none() | _value(s)) if s.read_only else _value(s) for n, s in policy.fields.items()}
    )


EDITOR = principal("editor", "privacy_officer")


@SETTINGS
@given(json_objects, json_objects)
def test_merge_twice_equals_once(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@SETTINGS
@given(st.sampled_from(SYSTEMS).flatmap(
    lambda s: st.tuples(st.just(s), _full_records(s), _patches(s, nulls=True))))
def test_applying_a_patch_twice_equals_once(
    case: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    system, pre, patch = case
    first = ENGINE.decide(system, pre, patch, EDITOR, "contract")
    if not first.allowed:
        return
    stored = merge_patch(pre, patch)  # how the upstream holds it after the first write
    second = ENGINE.decide(system, stored, patch, EDITOR, "contract")
    if first.merged is not None:
        assert second.merged == first.merged
    if not any(v is None for v in first.after.values()):
        assert second.changed == ()


@SETTINGS
@given(st.sampled_from(SYSTEMS).flatmap(lambda s: st.tuples(st.just(s), _full_records(s))))
def test_empty_patch_changes_nothing(case: tuple[str, dict[str, Any]]) -> None:
    system, pre = case
    frozen = system == "billbee" and pre.get("ArchivedAt") is not None
    for roles in (("editor",), ("auditor",), ("admin",)):
        decision = ENGINE.decide(system, pre, {}, principal(*roles), None)
        assert decision.changed == ()
        # an archived record refuses every write, even an empty one (rules come first)
        assert decision.allowed is not frozen
        if decision.merged is not None:
            assert decision.merged == pre


@SETTINGS
@given(st.sampled_from(SYSTEMS), json_objects | json_values)
def test_validate_never_raises(system: str, patch: Any) -> None:
    errors = ENGINE.validate(system, patch)
    assert isinstance(errors, list)


@SETTINGS
@given(st.sampled_from(SYSTEMS).flatmap(
    lambda s: st.tuples(st.just(s), st.dictionaries(
        st.sampled_from(sorted(ENGINE.policies[s].fields)), json_values, max_size=8))))
def test_validate_and_decide_never_raise_on_known_fields(case: tuple[str, dict[str, Any]]) -> None:
    system, patch = case
    ENGINE.validate(system, patch)
    ENGINE.decide(system, patch, patch, EDITOR, "billing")
    ENGINE.mask(system, patch, ["editor"])


def _strings(system: str) -> st.SearchStrategy[dict[str, Any]]:
    policy = ENGINE.policies[system]
    leaves = {n: s for n, s in policy.fields.items() if s.children is None and s.items is None}
    return st.fixed_dictionaries({n: st.text(max_size=30) for n in leaves})


@SETTINGS
@given(st.sampled_from(SYSTEMS).flatmap(lambda s: st.tuples(st.just(s), _strings(s))),
       st.sampled_from([("editor",), ("auditor",), ("admin",), ("guest",), ("auditor", "admin")]),
       st.booleans())
def test_mask_never_shows_a_personal_value_in_clear(
    case: tuple[str, dict[str, Any]], roles: tuple[str, ...], restricted: bool
) -> None:
    system, record = case
    if system == "keycom":
        record["restricted_type_id"] = 2 if restricted else 1
    masked = ENGINE.mask(system, record, roles).record
    for name, value in record.items():
        level = ENGINE.sensitivity(system, name, record)
        if SENSITIVITY_RANK[level] >= SENSITIVITY_RANK["personal"]:
            assert masked[name] != value, name


def test_property_fixtures_use_the_shipped_policies(policy_set: PolicySet) -> None:
    assert ENGINE.policies.systems == policy_set.systems


def _any_record(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Every field set, strings arbitrary (nested objects and arrays included)."""
    if spec.type == "string":
        return st.text(min_size=1, max_size=20)
    if spec.type == "object":
        assert spec.children is not None
        return st.fixed_dictionaries({k: _any_record(s) for k, s in spec.children.items()})
    if spec.type == "array":
        assert spec.items is not None
        return st.lists(_any_record(spec.items), min_size=1, max_size=2)
    return _value(spec)


def _pairs(original: Any, masked: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(original, dict):
        return [p for k, v in original.items() for p in _pairs(v, masked[k], f"{path}.{k}")]
    if isinstance(original, list):
        return [p for i, v in enumerate(original) for p in _pairs(v, masked[i], f"{path}[{i}]")]
    return [(path, original, masked)]


@SETTINGS
@given(st.sampled_from(SYSTEMS).flatmap(lambda s: st.tuples(st.just(s), st.fixed_dictionaries(
    {n: _any_record(spec) for n, spec in ENGINE.policies[s].fields.items()}))),
       st.sampled_from([("editor",), ("auditor",), ("admin",)]))
def test_mask_never_shows_a_nested_personal_value_in_clear(
    case: tuple[str, dict[str, Any]], roles: tuple[str, ...]
) -> None:
    system, record = case
    masked = ENGINE.mask(system, record, roles).record
    for name, value in record.items():
        for path, clear, shown in _pairs(value, masked[name], name):
            level = ENGINE.sensitivity(system, path, record)
            if SENSITIVITY_RANK[level] >= SENSITIVITY_RANK["personal"] and clear is not None:
                assert shown != clear, path
