"""decide(): may this principal, for this purpose, apply this patch to this record?

Order of checks (the gateway relies on it): record-state deny rules -> purpose missing ->
role per field (record_restricted where a rule raised the field) -> purpose per field ->
for whole-object systems, fields that a PUT would clear because nobody could read them.

One pass over the patch's leaves gathers everything; the verdict follows that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.vocabulary import Problem, Purpose, parse
from policies.compiled import CompiledPolicy, FieldSpec
from policies.merge import merge_patch, same
from policies.model import UNKNOWN_SENSITIVITY, Decision, FieldError
from policies.principal import Principal
from policies.state import record_state

MISSING: Any = object()
_PLAIN = frozenset({str, int, float, bool})

# (path, spec or None, new value, old value or MISSING)
Leaf = tuple[str, FieldSpec | None, Any, Any]


def _leaves(
    fields: Mapping[str, FieldSpec],
    patch: Mapping[Any, Any],
    pre: Mapping[str, Any] | None,
    prefix: str,
    out: list[Leaf],
) -> None:
    """The paths a merge patch sets: into objects the policy knows, whole values elsewhere."""
    for key, value in patch.items():
        spec = fields.get(key) if type(key) is str else None
        path = f"{prefix}{key}"
        before = pre.get(key, MISSING) if pre is not None else MISSING
        if spec is not None and spec.children is not None and isinstance(value, dict):
            sub = before if isinstance(before, dict) else None
            _leaves(spec.children, value, sub, path + ".", out)
        else:
            out.append((path, spec, value, before))


def _unchanged(old: Any, value: Any) -> bool:
    if old is MISSING:
        return False  # an old value the gateway did not read is unknown: the change counts
    if value is None:
        return old is None
    kind = type(old)
    if kind is type(value) and kind is not dict and kind is not list:
        return bool(old == value)
    return same(old, value)


def _unread_members(
    fields: Mapping[str, FieldSpec],
    known: Mapping[str, Any],
    patch: Mapping[str, Any],
    prefix: str,
    out: list[str],
) -> None:
    """An object the gateway could not read, patched in part, would lose its other members
    in a whole-object PUT: name every writable member the patch does not give."""
    for name, value in patch.items():
        spec = fields.get(name) if type(name) is str else None
        if spec is None or spec.children is None or type(value) is not dict:
            continue
        inner = known.get(name, MISSING)
        if inner is MISSING:
            out.extend(
                f"{prefix}{name}.{sub}"
                for sub, sub_spec in spec.children.items()
                if not sub_spec.read_only and sub not in value
            )
        elif isinstance(inner, dict):
            _unread_members(spec.children, inner, value, f"{prefix}{name}.", out)


def _errors(paths: list[str], code: Problem, message: str) -> list[FieldError]:
    return [FieldError(p, code, message) for p in paths]


def decide(
    policy: CompiledPolicy,
    pre_image: Mapping[str, Any] | None,
    patch: Mapping[str, Any],
    principal: Principal,
    purpose: str | None,
) -> Decision:
    # 1. record-state deny rules (an unknown record fails closed)
    for rule in policy.deny_rules:
        if pre_image is None or rule.test(pre_image):
            return Decision(False, rule.problem,
                            f"the record's state forbids any change (rule {rule.name})")
    leaves: list[Leaf] = []
    _leaves(policy.fields, patch, pre_image, "", leaves)
    state = record_state(policy, pre_image)
    escalate = state.escalate
    raised_by = state.raised_by
    roles = principal.roles
    changed: list[str] = []
    protection: dict[str, str] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    unknown: list[str] = []
    restricted: list[tuple[str, str]] = []  # (path, rule name)
    not_editable: list[str] = []
    wrong_purpose: list[str] = []
    for path, spec, value, old in leaves:
        if spec is None:
            unknown.append(path)
            static = UNKNOWN_SENSITIVITY
        else:
            static = spec.sensitivity
            raiser = raised_by.get(static) if raised_by else None
            if raiser is not None and raiser.edit_roles.isdisjoint(roles):
                restricted.append((path, raiser.name))
            elif spec.edit_roles.isdisjoint(roles):
                not_editable.append(path)
            if purpose not in spec.purposes:
                wrong_purpose.append(path)
        if old is MISSING:
            before[path] = None
        else:
            # two plain values of one type: compared here, without a call
            kind = type(old)
            if kind is type(value) and kind in _PLAIN:
                if old == value:
                    continue
            elif _unchanged(old, value):
                continue
            before[path] = old
        changed.append(path)
        protection[path] = escalate.get(static, static) if escalate else static
        after[path] = value
    changed_t = tuple(changed)

    def deny(problem: Problem, detail: str, errors: list[FieldError]) -> Decision:
        return Decision(False, problem, detail, tuple(errors), changed_t, None, protection,
                        before, after)

    # 2. a purpose is stated
    if leaves and not purpose:
        return deny(
            Problem.PURPOSE_REQUIRED, "a purpose (X-Purpose) is required to change a record", []
        )
    # 3. the principal's roles may change each field
    if restricted:
        problem = state.raised_by[next(iter(state.raised_by))].problem
        who = ", ".join(sorted(state.rules[0].edit_roles))
        errors = [FieldError(p, problem, f"the record is restricted (rule {name}): only {who}")
                  for p, name in restricted]
        errors += _errors(not_editable + unknown, Problem.FIELD_NOT_EDITABLE,
                          "your roles may not change it")
        return deny(problem, f"the record's state lets only {who} change: "
                    f"{', '.join(p for p, _ in restricted)}", errors)
    if not_editable or unknown:
        paths = not_editable + unknown
        return deny(Problem.FIELD_NOT_EDITABLE, f"your roles may not change: {', '.join(paths)}",
                    _errors(paths, Problem.FIELD_NOT_EDITABLE, "your roles may not change it"))
    # 4. the purpose allows each field
    if wrong_purpose:
        what = f"the purpose {purpose!r}" if parse(Purpose, purpose) else "an unknown purpose"
        return deny(Problem.PURPOSE_NOT_ALLOWED,
                    f"{what} does not allow changing: {', '.join(wrong_purpose)}",
                    _errors(wrong_purpose, Problem.PURPOSE_NOT_ALLOWED,
                            "the purpose does not allow changing it"))
    # 5. whole-object systems: never clear what the gateway could not read
    merged: dict[str, Any] | None = None
    if policy.mode == "put":
        known = pre_image if pre_image is not None else {}
        missing = [n for n in policy.clear_candidates if n not in known and n not in patch]
        if any(name in patch for name in policy.object_fields):
            _unread_members(policy.fields, known, patch, "", missing)
        if missing:
            return deny(Problem.WOULD_CLEAR_UNKNOWN_FIELDS,
                        f"a whole-object update would clear {len(missing)} fields the gateway "
                        f"could not read: {', '.join(missing)}",
                        _errors(missing, Problem.WOULD_CLEAR_UNKNOWN_FIELDS,
                                "could not be read from the upstream; send its value in the "
                                "patch"))
        merged = merge_patch(known, patch)
    detail = f"{len(changed)} field(s) change" if changed else "nothing changes"
    return Decision(True, None, detail, (), changed_t, merged, protection, before, after)
