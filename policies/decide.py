"""decide(): may this principal, for this purpose, apply this patch to this record?

Order of checks (the gateway relies on it): record-state deny rules -> purpose missing ->
role per field (record_restricted where a rule raised the field) -> purpose per field ->
for whole-object systems, fields that a PUT would clear because nobody could read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.compiled import CompiledPolicy, EscalateRule, FieldSpec
from policies.merge import merge_patch, same
from policies.model import PURPOSES, SENSITIVITY_RANK, UNKNOWN_SENSITIVITY, Decision, FieldError
from policies.principal import Principal

MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class RecordState:
    """The rules that hold for one record: how sensitivities rise, and who may then edit."""

    escalate: Mapping[str, str]
    rules: tuple[EscalateRule, ...]

    def sensitivity(self, static: str) -> str:
        return self.escalate.get(static, static)

    def raising_rule(self, static: str) -> EscalateRule | None:
        for rule in self.rules:
            if static in rule.escalate:
                return rule
        return None


NO_STATE = RecordState({}, ())


def record_state(policy: CompiledPolicy, record: Mapping[str, Any] | None) -> RecordState:
    """Evaluate the escalation rules on ``record``; an unknown record (None) fails closed:
    every rule is taken to hold."""
    if not policy.escalate_rules:
        return NO_STATE
    if record is None:
        active = policy.escalate_rules
    else:
        active = tuple(r for r in policy.escalate_rules if r.test(record))
    if not active:
        return NO_STATE
    escalate: dict[str, str] = {}
    for rule in active:
        for src, dst in rule.escalate.items():
            old = escalate.get(src, src)
            escalate[src] = dst if SENSITIVITY_RANK[dst] > SENSITIVITY_RANK[old] else old
    return RecordState(escalate, active)


@dataclass(frozen=True, slots=True)
class Trail:
    """What a patch would change, carried by allowing and denying decisions alike."""

    changed: tuple[str, ...]
    protection: Mapping[str, str]
    before: Mapping[str, Any]
    after: Mapping[str, Any]

    def deny(self, problem: str, detail: str, errors: list[FieldError]) -> Decision:
        return Decision(False, problem, detail, tuple(errors), self.changed, None,
                        self.protection, self.before, self.after)


# (path, spec or None, new value, old value or MISSING)
Leaf = tuple[str, FieldSpec | None, Any, Any]


def _leaves(
    fields: Mapping[str, FieldSpec] | None,
    patch: Mapping[Any, Any],
    pre: Mapping[str, Any] | None,
    prefix: str,
    out: list[Leaf],
) -> None:
    for key, value in patch.items():
        spec = fields.get(key) if fields is not None and isinstance(key, str) else None
        path = f"{prefix}{key}"
        before = pre.get(key, MISSING) if pre is not None else MISSING
        if spec is not None and spec.children is not None and isinstance(value, Mapping):
            sub = before if isinstance(before, Mapping) else None
            _leaves(spec.children, value, sub, f"{path}.", out)
        else:
            out.append((path, spec, value, before))


def _names(errors: list[FieldError]) -> str:
    return ", ".join(e.path for e in errors)


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
            return Decision(
                False,
                rule.problem,
                f"the record's state forbids any change (rule {rule.name})",
            )
    leaves: list[Leaf] = []
    _leaves(policy.fields, patch, pre_image, "", leaves)
    state = record_state(policy, pre_image)
    # what really changes
    changed: list[str] = []
    protection: dict[str, str] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for path, spec, value, old in leaves:
        # an old value the gateway did not read (MISSING) is unknown: the change counts
        if old is not MISSING and (
            (value is None and old is None) or (value is not None and same(old, value))
        ):
            continue
        changed.append(path)
        static = spec.sensitivity if spec is not None else UNKNOWN_SENSITIVITY
        protection[path] = state.sensitivity(static)
        before[path] = None if old is MISSING else old
        after[path] = value
    trail = Trail(tuple(changed), protection, before, after)
    # 2. a purpose is stated
    if leaves and not purpose:
        return trail.deny("purpose_required",
                          "a purpose (X-Purpose) is required to change a record", [])
    # 3. the principal's roles may change each field
    roles = principal.roles
    denied: list[FieldError] = []
    restricted: list[FieldError] = []
    for path, spec, _value, _old in leaves:
        if spec is None:
            denied.append(FieldError(path, "field_not_editable", "is not a field of this system"))
            continue
        raised = state.raising_rule(spec.sensitivity)
        if raised is not None and not roles & raised.edit_roles:
            who = ", ".join(sorted(raised.edit_roles))
            restricted.append(FieldError(
                path, raised.problem, f"the record is restricted (rule {raised.name}): only {who}"))
        elif not roles & spec.edit_roles:
            denied.append(FieldError(path, "field_not_editable", "your roles may not change it"))
    if restricted:
        return trail.deny(restricted[0].code, "the record's state lets only "
                          f"{', '.join(sorted(state.rules[0].edit_roles))} change: "
                          f"{_names(restricted)}", restricted + denied)
    if denied:
        return trail.deny("field_not_editable",
                          f"your roles may not change: {_names(denied)}", denied)
    # 4. the purpose allows each field
    wrong = [
        FieldError(path, "purpose_not_allowed", "the purpose does not allow changing it")
        for path, spec, _v, _o in leaves
        if spec is not None and purpose not in spec.purposes
    ]
    if wrong:
        what = f"the purpose {purpose!r}" if purpose in PURPOSES else "an unknown purpose"
        return trail.deny("purpose_not_allowed",
                          f"{what} does not allow changing: {_names(wrong)}", wrong)
    # 5. whole-object systems: never clear what the gateway could not read
    merged: dict[str, Any] | None = None
    if policy.mode == "put":
        known = pre_image if pre_image is not None else {}
        missing = [
            FieldError(name, "would_clear_unknown_fields",
                       "could not be read from the upstream; send its value in the patch")
            for name in policy.fields
            if name in policy.writable_fields and name != policy.id_field
            and name not in known and name not in patch
        ]
        if missing:
            return trail.deny("would_clear_unknown_fields",
                              f"a whole-object update would clear {len(missing)} fields the "
                              f"gateway could not read: {_names(missing)}", missing)
        merged = merge_patch(known, patch)
    detail = f"{len(changed)} field(s) change" if changed else "nothing changes"
    return Decision(True, None, detail, (), trail.changed, merged, trail.protection,
                    trail.before, trail.after)

