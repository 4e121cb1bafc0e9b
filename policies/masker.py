"""mask(): a record as one caller may see it, field by field, after record-state rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.compiled import CompiledPolicy, FieldSpec
from policies.masking.base import Masker, MaskingKeys
from policies.masking.registry import STRATEGIES
from policies.model import SENSITIVITIES, UNKNOWN_SENSITIVITY, MaskResult
from policies.state import RecordState, record_state

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
            masker = strategy.build(options, keys, policy.system)
            per_role[role][sens] = (strategy.name, strategy.disclosure, masker)
    redact = STRATEGIES["redact"]
    fallback = ("redact", redact.build(redact.options_type(), keys, policy.system))
    return PolicyMasks(per_role, fallback)


def mask_record(
    policy: CompiledPolicy, masks: PolicyMasks, record: Mapping[str, Any], roles: Iterable[str]
) -> MaskResult:
    plan = masks.plan(policy, frozenset(roles), record_state(policy, record))
    steps, unknown = plan.steps, plan.unknown
    walker = _Walker(plan.cells)
    counts = walker.counts
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            out[key] = None
            continue
        step = steps.get(key, unknown)
        if step is None:  # shown as it is
            out[key] = value
        elif isinstance(step, tuple):  # a leaf masked: (strategy name, masker, shape)
            name, masker, shape = step
            counts[name] = counts.get(name, 0) + 1
            out[key] = _shown(masker(value, shape, key), value)
        else:  # an object or a list the policy describes: walked
            out[key] = walker.walk(step, value, key)
    return MaskResult(out, counts)


#: a top-level field's step: None (clear), a leaf's (name, masker, shape), or its spec
_Step = tuple[str, Masker, str] | FieldSpec | None


class _Plan:
    """For one role set and one record state: each sensitivity's cell after the state's
    escalation, and each top-level field's step (:data:`_Step`)."""

    __slots__ = ("cells", "steps", "unknown")

    def __init__(
        self, policy: CompiledPolicy, table: MaskTable, escalate: Mapping[str, str]
    ) -> None:
        # sensitivity (static) -> (strategy name, masker), after the record's escalation
        self.cells = cells = {s: table[escalate.get(s, s)] for s in SENSITIVITIES}
        self.steps: dict[str, _Step] = {
            key: _leaf_step(cells[spec.sensitivity], spec.shape)
            if spec.children is None and spec.items is None
            else spec
            for key, spec in policy.fields.items()
        }
        # a member the policy does not name: its whole value masked as unknown text
        self.unknown = _leaf_step(cells[UNKNOWN_SENSITIVITY], "text")


def _shown(shown: Any, value: Any) -> Any:
    """A masked value as shown: None for a mask that happens to equal the value (it
    would reveal it)."""
    if shown is not None and type(shown) is type(value) and shown == value:
        return None
    return shown


def _leaf_step(cell: tuple[str, Masker], shape: str) -> _Step:
    name, masker = cell
    return None if name == "clear" else (name, masker, shape)


class _Walker:
    """One record's masking. A class, not nested functions: a recursive closure refers
    to itself through its cell, a reference cycle that only the garbage collector frees,
    one per answer (docs/performance.md, "Garbage collector")."""

    __slots__ = ("cells", "counts")

    def __init__(self, cells: dict[str, tuple[str, Any]]) -> None:
        self.cells = cells
        self.counts: dict[str, int] = {}

    def leaf(self, spec: FieldSpec | None, value: Any, path: str) -> Any:
        name, masker = self.cells[spec.sensitivity if spec is not None else UNKNOWN_SENSITIVITY]
        if name == "clear":
            return value
        counts = self.counts
        counts[name] = counts.get(name, 0) + 1
        return _shown(masker(value, spec.shape if spec is not None else "text", path), value)

    def walk(self, spec: FieldSpec | None, value: Any, path: str) -> Any:
        if value is None:
            return None
        if spec is not None:
            if spec.children is not None and isinstance(value, dict):
                children = spec.children
                return {k: self.walk(children.get(k), v, f"{path}.{k}") for k, v in value.items()}
            if spec.items is not None and isinstance(value, list):
                return [self.walk(spec.items, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return self.leaf(spec, value, path)
