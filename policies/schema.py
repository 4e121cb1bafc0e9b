"""The policy file schema, checked by hand so that every error names its key.

``check(data)`` returns ``[(key_path, message), ...]``; the loader adds file and line.
Unknown keys are errors everywhere. See docs/policies.md for the format.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any, Final

from common.vocabulary import RULE_PROBLEMS, Purpose, Role
from policies.checker import Checker, show
from policies.controls import CONTROLS
from policies.masking.registry import STRATEGIES, strategy_names
from policies.model import FORMATS, MODES, SENSITIVITIES, SENSITIVITY_RANK, TYPES
from policies.processing_schema import check_processing
from policies.yamlmarks import Key

ROLES: Final = tuple(Role)
PURPOSES: Final = tuple(Purpose)

TOP_KEYS = {"system", "title", "description", "mode", "id_field", "edit_profiles", "masking",
            "rules", "fields", "processing"}
TOP_REQUIRED = ("system", "mode", "id_field", "masking", "fields")
FIELD_KEYS = {"type", "description", "read_only", "required", "min_length", "max_length",
              "min_items", "max_items", "enum", "pattern", "format", "category", "sensitivity",
              "edit", "fields", "items", "allow_controls"}
EDIT_KEYS = {"roles", "purposes"}
RULE_KEYS = {"name", "description", "when", "deny", "escalate", "edit_roles", "problem"}
STRING_ONLY = ("min_length", "max_length", "pattern", "format", "allow_controls")
ARRAY_ONLY = ("min_items", "max_items")
CONDITION_WORDS = ("set", "unset")
CONDITION_OPS = ("equals", "in")


def check(data: Any) -> list[tuple[Key, str]]:
    c = Checker()
    if not c.mapping((), data):
        return c.errors
    c.keys((), data, TOP_KEYS)
    for name in TOP_REQUIRED:
        if name not in data:
            c.err((name,), "required key is missing")
    if (
        "system" in data
        and c.string(("system",), data["system"])
        and not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", data["system"])
    ):
        c.err(("system",), "expected a lower-case identifier")
    for name in ("title", "description"):
        if name in data:
            c.string((name,), data[name])
    if "mode" in data:
        c.choice(("mode",), data["mode"], MODES, "mode")
    profiles = _check_profiles(c, data.get("edit_profiles", {}))
    fields = data.get("fields")
    if "fields" in data and c.mapping(("fields",), fields):
        if not fields:
            c.err(("fields",), "a policy names at least one field")
        for name, spec in fields.items():
            _check_field(c, ("fields", name), spec, profiles)
    else:
        fields = {}
    id_field = data.get("id_field")
    if "id_field" in data and c.string(("id_field",), id_field) and id_field not in fields:
        c.err(("id_field",), f"{id_field!r} is not a top-level field")
    if "masking" in data:
        _check_masking(c, data["masking"])
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        c.err(("rules",), f"expected a list of rules, got {show(rules)}")
    else:
        for i, rule in enumerate(rules):
            _check_rule(c, ("rules", i), rule, fields)
    if "processing" in data:
        check_processing(c, data["processing"], fields, profiles)
    return c.errors


def _check_profiles(c: Checker, profiles: Any) -> dict[str, Any]:
    if not c.mapping(("edit_profiles",), profiles):
        return {}
    for name, spec in profiles.items():
        _check_edit(c, ("edit_profiles", name), spec)
    return dict(profiles)


def _check_edit(c: Checker, key: Key, spec: Any) -> None:
    if not c.mapping(key, spec):
        return
    c.keys(key, spec, EDIT_KEYS)
    for name in sorted(EDIT_KEYS - set(spec)):
        c.err((*key, name), "required key is missing")
    if "roles" in spec:
        c.choices((*key, "roles"), spec["roles"], ROLES, "role")
    if "purposes" in spec:
        c.choices((*key, "purposes"), spec["purposes"], PURPOSES, "purpose")


def _check_field(c: Checker, key: Key, spec: Any, profiles: Mapping[str, Any]) -> None:
    if not c.mapping(key, spec):
        return
    c.keys(key, spec, FIELD_KEYS)
    if "type" not in spec:
        c.err((*key, "type"), "required key is missing")
        return
    if not c.choice((*key, "type"), spec["type"], TYPES, "type"):
        return
    ftype = spec["type"]
    if "description" in spec:
        c.string((*key, "description"), spec["description"])
    for flag in ("read_only", "required"):
        if flag in spec:
            c.boolean((*key, flag), spec[flag])
    for name in STRING_ONLY:
        if name in spec and ftype != "string":
            c.err((*key, name), f"only for type string, not {ftype}")
    for name in ARRAY_ONLY:
        if name in spec and ftype != "array":
            c.err((*key, name), f"only for type array, not {ftype}")
    for name in ("min_length", "max_length", "min_items", "max_items"):
        if name in spec:
            c.count((*key, name), spec[name])
    _check_constraints(c, key, spec, ftype)
    composite = ftype == "object" or (
        ftype == "array" and isinstance(spec.get("items"), dict)
        and spec["items"].get("type") == "object"
    )
    if "sensitivity" in spec:
        c.choice((*key, "sensitivity"), spec["sensitivity"], SENSITIVITIES, "sensitivity")
    elif not composite:
        c.err((*key, "sensitivity"), "required key is missing")
    if "category" in spec:
        _check_category(c, (*key, "category"), spec["category"])
    elif not composite:
        c.err((*key, "category"), "required key is missing")
    _check_field_edit(c, key, spec, profiles)
    if ftype == "object":
        if "fields" not in spec:
            c.err((*key, "fields"), "required key is missing for type object")
        elif c.mapping((*key, "fields"), spec["fields"]):
            for name, sub in spec["fields"].items():
                _check_field(c, (*key, "fields", name), sub, profiles)
    elif "fields" in spec:
        c.err((*key, "fields"), f"only for type object, not {ftype}")
    if ftype == "array":
        if "items" not in spec:
            c.err((*key, "items"), "required key is missing for type array")
        else:
            _check_field(c, (*key, "items"), spec["items"], profiles)
    elif "items" in spec:
        c.err((*key, "items"), f"only for type array, not {ftype}")


def _check_constraints(c: Checker, key: Key, spec: Mapping[str, Any], ftype: str) -> None:
    if "enum" in spec:
        values = spec["enum"]
        if ftype not in ("string", "integer", "number"):
            c.err((*key, "enum"), f"only for string, integer or number, not {ftype}")
        elif not isinstance(values, list) or not values:
            c.err((*key, "enum"), f"expected a non-empty list, got {show(values)}")
        else:
            for i, v in enumerate(values):
                if not _is_type(v, ftype):
                    c.err((*key, "enum", i), f"expected a {ftype}, got {show(v)}")
    if "pattern" in spec and c.string((*key, "pattern"), spec["pattern"]):
        try:
            re.compile(spec["pattern"])
        except re.error as exc:
            c.err((*key, "pattern"), f"not a valid regular expression: {exc}")
    if "format" in spec:
        c.choice((*key, "format"), spec["format"], FORMATS, "format")
    if "allow_controls" in spec and ftype == "string":
        c.choices((*key, "allow_controls"), spec["allow_controls"], tuple(CONTROLS), "control")
    for low, high in (("min_length", "max_length"), ("min_items", "max_items")):
        lo, hi = spec.get(low), spec.get(high)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            c.err((*key, low), f"greater than {high}")


def _is_type(value: Any, ftype: str) -> bool:
    if isinstance(value, bool):
        return False
    if ftype == "string":
        return isinstance(value, str)
    if ftype == "integer":
        return isinstance(value, int)
    return isinstance(value, int | float)


def _check_category(c: Checker, key: Key, value: Any) -> None:
    c.category(key, value)


def _check_field_edit(
    c: Checker, key: Key, spec: Mapping[str, Any], profiles: Mapping[str, Any]
) -> None:
    if "edit" not in spec:
        return
    edit = spec["edit"]
    if spec.get("read_only") is True:
        c.err((*key, "edit"), "a read-only field cannot name who may edit it")
        return
    if isinstance(edit, str):
        if edit not in profiles:
            valid = ", ".join(sorted(profiles)) or "none defined"
            c.err((*key, "edit"), f"unknown edit profile {edit!r} (valid: {valid})")
            return
        edit = profiles[edit]
    else:
        _check_edit(c, (*key, "edit"), edit)
    roles = edit.get("roles") if isinstance(edit, dict) else None
    if spec.get("sensitivity") == "restricted" and isinstance(roles, list):
        others = sorted({r for r in roles if isinstance(r, str)} - {Role.PRIVACY_OFFICER})
        if others:
            c.err((*key, "edit"), f"a restricted field may be changed by {Role.PRIVACY_OFFICER} "
                  f"only, not {', '.join(others)}")


def _check_masking(c: Checker, masking: Any) -> None:
    if not c.mapping(("masking",), masking):
        return
    for role, table in masking.items():
        key: Key = ("masking", role)
        if not c.choice(key, role, ROLES, "role") or not c.mapping(key, table):
            continue
        c.keys(key, table, set(SENSITIVITIES))
        disclosure: dict[str, int] = {}
        for sens in SENSITIVITIES:
            if sens not in table:
                c.err((*key, sens), "required key is missing")
                continue
            name = _check_strategy(c, (*key, sens), table[sens])
            if name is not None:
                disclosure[sens] = STRATEGIES[name].disclosure
        ordered = sorted(disclosure, key=SENSITIVITY_RANK.__getitem__)
        for lower, higher in itertools.pairwise(ordered):
            if disclosure[higher] > disclosure[lower]:
                c.err((*key, higher), f"shows more than {lower}: a higher sensitivity "
                      "must never be masked less")


def _check_strategy(c: Checker, key: Key, value: Any) -> str | None:
    options: dict[str, Any] = {}
    if isinstance(value, dict):
        options = {k: v for k, v in value.items() if k != "strategy"}
        if "strategy" not in value:
            c.err((*key, "strategy"), "required key is missing")
            return None
        value = value["strategy"]
        key = (*key, "strategy")
    if not isinstance(value, str) or value not in STRATEGIES:
        c.err(key, f"unknown masking strategy {show(value)} "
              f"(valid: {', '.join(strategy_names())})")
        return None
    _, errors = STRATEGIES[value].parse_options(options)
    for opt, message in errors:
        c.err((*key[:-1], opt) if opt else key, message)
    return value


def _check_rule(c: Checker, key: Key, rule: Any, fields: Mapping[str, Any]) -> None:
    if not c.mapping(key, rule):
        return
    c.keys(key, rule, RULE_KEYS)
    for name in ("name", "when"):
        if name not in rule:
            c.err((*key, name), "required key is missing")
    if "name" in rule:
        c.string((*key, "name"), rule["name"])
    if "when" in rule and c.mapping((*key, "when"), rule["when"]):
        if not rule["when"]:
            c.err((*key, "when"), "a rule needs at least one condition")
        for path, test in rule["when"].items():
            _check_condition(c, (*key, "when", path), path, test, fields)
    if ("deny" in rule) == ("escalate" in rule):
        c.err(key, "a rule has exactly one effect: deny or escalate")
    if "deny" in rule:
        c.choice((*key, "deny"), rule["deny"], RULE_PROBLEMS, "problem")
        for name in ("edit_roles", "problem"):
            if name in rule:
                c.err((*key, name), "only with escalate")
    if "escalate" in rule:
        _check_escalate(c, key, rule)


def _check_escalate(c: Checker, key: Key, rule: Mapping[str, Any]) -> None:
    esc = rule["escalate"]
    if c.mapping((*key, "escalate"), esc):
        for src, dst in esc.items():
            k = (*key, "escalate", src)
            if c.choice(k, src, SENSITIVITIES, "sensitivity") and c.choice(
                k, dst, SENSITIVITIES, "sensitivity"
            ) and SENSITIVITY_RANK[dst] <= SENSITIVITY_RANK[src]:
                c.err(k, "escalation must raise the sensitivity")
    for name in ("edit_roles", "problem"):
        if name not in rule:
            c.err((*key, name), "required key is missing with escalate")
    if "edit_roles" in rule:
        c.choices((*key, "edit_roles"), rule["edit_roles"], ROLES, "role")
    if "problem" in rule:
        c.choice((*key, "problem"), rule["problem"], RULE_PROBLEMS, "problem")


def _check_condition(
    c: Checker, key: Key, path: str, test: Any, fields: Mapping[str, Any]
) -> None:
    spec: Any = {"fields": fields, "type": "object"}
    for part in path.split("."):
        sub = spec.get("fields") if isinstance(spec, dict) else None
        if not isinstance(sub, dict) or part not in sub:
            c.err(key, f"condition on unknown field {path!r}")
            return
        spec = sub[part]
    if isinstance(test, str):
        if test not in CONDITION_WORDS:
            c.err(key, f"unknown test {test!r} (valid: set, unset, equals: X, in: [X, ...])")
        return
    if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in CONDITION_OPS:
        c.err(key, "expected set, unset, {equals: X} or {in: [X, ...]}")
        return
    if "in" in test and (not isinstance(test["in"], list) or not test["in"]):
        c.err((*key, "in"), "expected a non-empty list")
