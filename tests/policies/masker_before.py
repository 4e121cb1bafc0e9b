"""A frozen copy of the masker as it was before issue 11's per-field binding (branch
``i11-pol``), for tests/policies/test_masking_before.py only: the answers of the new
masker are compared with these, record by record. Its strategies are frozen here too
(the per-call shape dispatch of ``partial``, the path of ``aesgcm``); so is the
record-state evaluation (the general loop over the rules). Not used by the gateway."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common import aead
from policies.compiled import CompiledPolicy, EscalateRule, FieldSpec
from policies.masking.base import REDACTED, MaskingConfigError, MaskingKeys, canonical
from policies.masking.partial import partial_email, partial_phone, partial_text
from policies.masking.registry import STRATEGIES
from policies.model import SENSITIVITIES, SENSITIVITY_RANK, UNKNOWN_SENSITIVITY, MaskResult

# (value, shape, path) -> what the caller sees
Masker = Callable[[Any, str, str], Any]

# sensitivity -> (strategy name, masker)
MaskTable = dict[str, tuple[str, Masker]]


@dataclass
class PolicyMasks:
    """The built maskers of one policy: per role, per sensitivity; a per-role-set cache,
    and a per-(role set, record state) cache of each top-level field's step."""

    per_role: dict[str, dict[str, tuple[str, int, Masker]]]
    fallback: tuple[str, Masker]
    cache: dict[frozenset[str], MaskTable] = field(default_factory=dict)
    plans: dict[tuple[frozenset[str], tuple[object, ...]], _Plan] = field(default_factory=dict)

    def table(self, roles: frozenset[str]) -> MaskTable:
        """For each sensitivity, the most revealing strategy any of ``roles`` is given;
        a role the policy does not name sees nothing (deny by default)."""
        cached = self.cache.get(roles)
        if cached is not None:
            return cached
        out: MaskTable = {}
        for sens in SENSITIVITIES:
            best: tuple[str, int, Masker] | None = None
            for role in sorted(roles):
                cell = self.per_role.get(role, {}).get(sens)
                if cell is not None and (best is None or cell[1] > best[1]):
                    best = cell
            out[sens] = (best[0], best[2]) if best is not None else self.fallback
        if len(self.cache) < 64:
            self.cache[roles] = out
        return out

    def plan(self, policy: CompiledPolicy, roles: frozenset[str], state: RecordState) -> _Plan:
        """What each top-level field of a record becomes for ``roles`` in ``state`` (the
        escalation rules that hold): worked out once per such pair, not per record."""
        key = (roles, state.rules)
        found = self.plans.get(key)
        if found is None:
            found = _Plan(policy, self.table(roles), state.escalate)
            if len(self.plans) < 64:
                self.plans[key] = found
        return found


def build_masks(policy: CompiledPolicy, keys: MaskingKeys) -> PolicyMasks:
    """Build every strategy the policy names, with its options; raises MaskingConfigError
    when a keyed strategy lacks its key."""
    per_role: dict[str, dict[str, tuple[str, int, Masker]]] = {}
    for role, row in policy.masking.items():
        per_role[role] = {}
        for sens, ref in row.items():
            strategy = STRATEGIES[ref.name]
            options, errors = strategy.parse_options(ref.options)
            if errors:  # the loader has checked them; kept for policies built by hand
                raise ValueError(f"{policy.system}: bad options for {ref.name}")
            masker = _BUILDERS[strategy.name](options, keys, policy.system)
            per_role[role][sens] = (strategy.name, strategy.disclosure, masker)
    redact = STRATEGIES["redact"]
    fallback = ("redact", _BUILDERS["redact"](redact.options_type(), keys, policy.system))
    return PolicyMasks(per_role, fallback)


def mask_record(
    policy: CompiledPolicy, masks: PolicyMasks, record: Mapping[str, Any], roles: Iterable[str]
) -> MaskResult:
    plan = masks.plan(policy, frozenset(roles), record_state(policy, record))
    counts: dict[str, int] = {}
    # every field as it is (None stays None), in the record's order; then only the fields
    # a step masks are replaced, in place: the fields shown as they are are not visited
    # one by one (issue 11)
    out: dict[str, Any] = dict(record)
    for key, step in plan.masked:
        value = out.get(key)
        if value is None:  # absent, or null: nothing to mask
            continue
        if type(step) is tuple:  # a leaf masked: (strategy name, masker, shape)
            name, masker, shape = step
            counts[name] = counts.get(name, 0) + 1
            shown = masker(value, shape, key)
            # as _shown: a mask that happens to equal the value would reveal it
            if shown is not None and type(shown) is type(value) and shown == value:
                shown = None
            out[key] = shown
        else:  # an object or a list the policy describes
            out[key] = _masked(step, value, key, counts)
    unknown = plan.unknown
    if unknown is not None and not plan.known.issuperset(record):
        for key in record:  # members the policy does not name, in the record's order
            value = out[key]
            if value is not None and key not in plan.known:
                out[key] = _masked(unknown, value, key, counts)
    return MaskResult(out, counts)


class _Node:
    """The step of a field the policy describes as an object (``children``: each
    member's step) or a list (``items``: each item's step); ``leaf`` for a value of
    another type, ``unknown`` for a member the policy does not name."""

    __slots__ = ("children", "items", "leaf", "unknown")

    def __init__(
        self, spec: FieldSpec, cells: dict[str, tuple[str, Masker]], unknown: _Step
    ) -> None:
        self.leaf = _leaf_step(cells[spec.sensitivity], spec.shape)
        self.unknown = unknown
        self.children = (
            {name: _step(child, cells, unknown) for name, child in spec.children.items()}
            if spec.children is not None
            else None
        )
        self.items = _step(spec.items, cells, unknown) if spec.items is not None else None


#: a field's step: None (shown as it is), a leaf's (strategy name, masker, shape), or
#: the :class:`_Node` of an object or a list
_Step = tuple[str, Masker, str] | _Node | None


def _step(spec: FieldSpec, cells: dict[str, tuple[str, Masker]], unknown: _Step) -> _Step:
    if spec.children is None and spec.items is None:
        return _leaf_step(cells[spec.sensitivity], spec.shape)
    return _Node(spec, cells, unknown)


def _masked(step: _Step, value: Any, path: str, counts: dict[str, int]) -> Any:
    """``value`` at ``path`` as ``step`` shows it; ``counts`` the values masked, by
    strategy. (A module function, not a closure: no reference cycle per record, see
    docs/performance.md "Garbage collector".)"""
    if value is None or step is None:
        return value
    if type(step) is tuple:
        name, masker, shape = step
        counts[name] = counts.get(name, 0) + 1
        return _shown(masker(value, shape, path), value)
    assert isinstance(step, _Node)
    if step.children is not None and isinstance(value, dict):
        children, unknown = step.children, step.unknown
        return {
            k: _masked(children.get(k, unknown), v, f"{path}.{k}", counts)
            for k, v in value.items()
        }
    if step.items is not None and isinstance(value, list):
        item = step.items
        return [_masked(item, v, f"{path}[{i}]", counts) for i, v in enumerate(value)]
    return _masked(step.leaf, value, path, counts)


class _Plan:
    """For one role set and one record state: each top-level field's step, and the
    step of a member the policy does not name (its whole value masked as unknown text);
    ``masked``: the fields whose step masks or walks them, with that step, in the
    policy's order; ``known``: every field the policy names."""

    __slots__ = ("known", "masked", "steps", "unknown")

    def __init__(
        self, policy: CompiledPolicy, table: MaskTable, escalate: Mapping[str, str]
    ) -> None:
        # sensitivity (static) -> (strategy name, masker), after the record's escalation
        cells = {s: table[escalate.get(s, s)] for s in SENSITIVITIES}
        self.unknown = unknown = _leaf_step(cells[UNKNOWN_SENSITIVITY], "text")
        self.steps = {key: _step(spec, cells, unknown) for key, spec in policy.fields.items()}
        self.masked = tuple((key, step) for key, step in self.steps.items() if step is not None)
        self.known = frozenset(self.steps)


def _shown(shown: Any, value: Any) -> Any:
    """A masked value as shown: None for a mask that happens to equal the value (it
    would reveal it)."""
    if shown is not None and type(shown) is type(value) and shown == value:
        return None
    return shown


def _leaf_step(cell: tuple[str, Masker], shape: str) -> _Step:
    name, masker = cell
    return None if name == "clear" else (name, masker, shape)


# -- the record state, as policies.state evaluated it (the general loop) ----------------


@dataclass(frozen=True, slots=True)
class RecordState:
    escalate: Mapping[str, str]
    raised_by: Mapping[str, EscalateRule]
    rules: tuple[EscalateRule, ...]


NO_STATE = RecordState({}, {}, ())


def record_state(policy: CompiledPolicy, record: Mapping[str, Any] | None) -> RecordState:
    rules = policy.escalate_rules
    if not rules:
        return NO_STATE
    active = rules if record is None else tuple([r for r in rules if r.test(record)])
    if not active:
        return NO_STATE
    escalate: dict[str, str] = {}
    raised_by: dict[str, EscalateRule] = {}
    for rule in active:
        for src, dst in rule.escalate.items():
            old = escalate.get(src, src)
            if SENSITIVITY_RANK[dst] > SENSITIVITY_RANK[old]:
                escalate[src] = dst
            raised_by.setdefault(src, rule)
    return RecordState(escalate, raised_by, active)


# -- the strategies' maskers as they were built (called with value, shape, path) ------


def _clear(options: Any, keys: MaskingKeys, system: str) -> Masker:
    def clear(value: Any, shape: str, path: str) -> Any:
        return value

    return clear


def _null(options: Any, keys: MaskingKeys, system: str) -> Masker:
    def null(value: Any, shape: str, path: str) -> Any:
        return None

    return null


def _redact(options: Any, keys: MaskingKeys, system: str) -> Masker:
    text = options.text

    def redact(value: Any, shape: str, path: str) -> Any:
        return text

    return redact


def _partial(options: Any, keys: MaskingKeys, system: str) -> Masker:
    keep = options.keep

    def partial(value: Any, shape: str, path: str) -> Any:
        if not isinstance(value, str):
            return REDACTED
        if shape == "email" and "@" in value:
            return partial_email(value)
        if shape == "phone":
            return partial_phone(value)
        return partial_text(value, keep)

    return partial


def _hash(options: Any, keys: MaskingKeys, system: str) -> Masker:
    salt = keys.hash_salt

    def salted_hash(value: Any, shape: str, path: str) -> Any:
        return "sha256:" + hashlib.sha256(salt + canonical(value)).hexdigest()

    return salted_hash


def _pseudonym(options: Any, keys: MaskingKeys, system: str) -> Masker:
    key = keys.pseudonym_key
    length = options.length

    def pseudonym(value: Any, shape: str, path: str) -> Any:
        return "pn:" + hmac.new(key, canonical(value), hashlib.sha256).hexdigest()[:length]

    return pseudonym


def _encrypt(options: Any, keys: MaskingKeys, system: str) -> Masker:
    key = keys.encryption_key
    if key is None or len(key) != aead.KEY_BYTES:
        raise MaskingConfigError("strategy 'aesgcm' needs a 32-byte encryption key")

    def encrypt(value: Any, shape: str, path: str) -> Any:
        blob = aead.seal(key, canonical(value), f"{system}|{path}".encode())
        return "aesgcm:" + base64.urlsafe_b64encode(blob).decode()

    return encrypt


_BUILDERS: dict[str, Callable[[Any, MaskingKeys, str], Masker]] = {
    "clear": _clear, "null": _null, "redact": _redact, "partial": _partial, "hash": _hash,
    "pseudonym": _pseudonym, "aesgcm": _encrypt,
}
