"""Turn a checked policy document into a :class:`CompiledPolicy` (tables and closures)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

from common.canonical import canonical_json
from common.vocabulary import Problem
from policies.compiled import (
    CompiledPolicy,
    DenyRule,
    EscalateRule,
    FieldSpec,
    RecordTest,
    StrategyRef,
    max_sensitivity,
)
from policies.controls import refused_characters
from policies.processing import compile_processing
from policies.state import single_rule

MISSING: Any = object()
EMAIL_CATEGORIES = ("user.contact.email",)
PHONE_CATEGORIES = ("user.contact.phone_number", "user.contact.fax_number")


def policy_version(data: Any) -> str:
    """The content hash of the normalised policy (key order, comments, layout ignored)."""
    text = canonical_json(data, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def compile_policy(data: Mapping[str, Any], source: str = "") -> CompiledPolicy:
    """Compile a document that :func:`policies.schema.check` accepted."""
    profiles: Mapping[str, Any] = data.get("edit_profiles", {})
    by_path: dict[str, FieldSpec] = {}
    fields = {
        name: _field(name, name, spec, profiles, by_path)
        for name, spec in data["fields"].items()
    }
    writable = frozenset(n for n, s in fields.items() if not s.read_only)
    deny: list[DenyRule] = []
    escalate: list[EscalateRule] = []
    for rule in data.get("rules", []):
        test = _conditions(rule["when"])
        if "deny" in rule:
            deny.append(DenyRule(rule["name"], test, Problem(rule["deny"])))
        else:
            escalate.append(
                EscalateRule(
                    rule["name"],
                    test,
                    dict(rule["escalate"]),
                    frozenset(rule["edit_roles"]),
                    Problem(rule["problem"]),
                )
            )
    masking = {
        role: {sens: _strategy_ref(cell) for sens, cell in table.items()}
        for role, table in data["masking"].items()
    }
    policy = CompiledPolicy(
        system=data["system"],
        version=policy_version(data),
        mode=cast(Literal["put", "patch"], data["mode"]),
        id_field=data["id_field"],
        title=data.get("title", data["system"]),
        fields=fields,
        by_path=by_path,
        writable_fields=writable,
        deny_rules=tuple(deny),
        escalate_rules=tuple(escalate),
        masking=masking,
        source=source,
        clear_candidates=tuple(
            n for n in fields if n in writable and n != data["id_field"]
        ),
        object_fields=tuple(n for n, s in fields.items() if s.children is not None),
        processing=compile_processing(data["processing"]) if "processing" in data else None,
    )
    policy.single_rule = single_rule(policy)
    return policy


def _strategy_ref(cell: Any) -> StrategyRef:
    if isinstance(cell, str):
        return StrategyRef(cell)
    options = {k: v for k, v in cell.items() if k != "strategy"}
    return StrategyRef(cell["strategy"], options)


def _field(
    name: str,
    path: str,
    spec: Mapping[str, Any],
    profiles: Mapping[str, Any],
    by_path: dict[str, FieldSpec],
) -> FieldSpec:
    edit = spec.get("edit")
    if isinstance(edit, str):
        edit = profiles[edit]
    read_only = bool(spec.get("read_only", False))
    roles = frozenset(edit["roles"]) if edit and not read_only else frozenset()
    purposes = frozenset(edit["purposes"]) if edit and not read_only else frozenset()
    pattern = spec.get("pattern")
    category = spec.get("category")
    fmt = spec.get("format")
    allow_controls = tuple(sorted(spec.get("allow_controls", ())))
    out = FieldSpec(
        name=name,
        path=path,
        type=spec["type"],
        description=spec.get("description", ""),
        read_only=read_only,
        required=bool(spec.get("required", False)),
        min_length=spec.get("min_length"),
        max_length=spec.get("max_length"),
        min_items=spec.get("min_items"),
        max_items=spec.get("max_items"),
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        pattern=re.compile(pattern) if pattern else None,
        pattern_text=pattern,
        format=fmt,
        category=category,
        edit_roles=roles,
        purposes=purposes,
        shape=_shape(fmt, category),
        allow_controls=allow_controls,
        refused=refused_characters(allow_controls),
    )
    by_path[path] = out
    children: list[FieldSpec] = []
    if spec["type"] == "object":
        out.children = {
            sub: _field(sub, f"{path}.{sub}", sub_spec, profiles, by_path)
            for sub, sub_spec in spec["fields"].items()
        }
        children = list(out.children.values())
    if spec["type"] == "array":
        out.items = _field(name, f"{path}[]", spec["items"], profiles, by_path)
        children = [out.items]
    declared = spec.get("sensitivity", "public")
    out.sensitivity = max_sensitivity(children, declared) if children else declared
    return out


def _shape(fmt: str | None, category: str | None) -> str:
    if fmt == "email" or category in EMAIL_CATEGORIES:
        return "email"
    if fmt == "phone" or category in PHONE_CATEGORIES:
        return "phone"
    return "text"


def _conditions(when: Mapping[str, Any]) -> RecordTest:
    tests = [_condition(path.split("."), test) for path, test in when.items()]
    if len(tests) == 1:
        return tests[0]

    def all_hold(record: Mapping[str, Any]) -> bool:
        return all(t(record) for t in tests)

    return all_hold


def _condition(parts: list[str], test: Any) -> RecordTest:
    """One condition as one call where it can be (issue 11): a top-level field's
    ``equals``, ``set`` or ``unset`` reads the field and decides in the same function;
    any other condition is :func:`_condition_general`'s (the same decisions)."""
    if len(parts) != 1:
        return _condition_general(parts, test)
    name = parts[0]
    if test == "set":

        def is_set(record: Mapping[str, Any]) -> bool:
            return record.get(name, MISSING) not in _ABSENT

        return is_set
    if test == "unset":

        def is_unset(record: Mapping[str, Any]) -> bool:
            return record.get(name, MISSING) in _ABSENT

        return is_unset
    if "equals" in test:
        expected = test["equals"]
        kind = type(expected)

        def equals(record: Mapping[str, Any]) -> bool:
            # as _same: of the expected type (1 is not True, 2.0 is not 2), and equal
            value = record.get(name, MISSING)
            return type(value) is kind and bool(value == expected)

        return equals
    return _condition_general(parts, test)


#: what ``set`` is not, and ``unset`` is: a member absent, or null
_ABSENT = (MISSING, None)


def _condition_general(parts: list[str], test: Any) -> RecordTest:
    """A condition on any path: the field read by a getter, then tested."""
    get = _getter(parts)
    if test == "set":
        return lambda r: get(r) not in (MISSING, None)
    if test == "unset":
        return lambda r: get(r) in (MISSING, None)
    if "equals" in test:
        expected = test["equals"]
        return lambda r: _same(get(r), expected)
    options = list(test["in"])
    return lambda r: any(_same(get(r), o) for o in options)


def _getter(parts: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    if len(parts) == 1:
        name = parts[0]
        return lambda record: record.get(name, MISSING)

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for part in parts:
            if not isinstance(value, Mapping):
                return MISSING
            value = value.get(part, MISSING)
        return value

    return get


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)
