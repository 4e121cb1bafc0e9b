"""mask(): a record as one caller may see it, field by field, after record-state rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.compiled import CompiledPolicy, FieldSpec
from policies.masking.base import Masker, MaskingKeys
from policies.masking.registry import STRATEGIES
from policies.model import SENSITIVITIES, UNKNOWN_SENSITIVITY, MaskResult
from policies.state import record_state

# sensitivity -> (strategy name, masker)
MaskTable = dict[str, tuple[str, Masker]]


@dataclass
class PolicyMasks:
    """The built maskers of one policy: per role, per sensitivity; a per-role-set cache."""

    per_role: dict[str, dict[str, tuple[str, int, Masker]]]
    fallback: tuple[str, Masker]
    cache: dict[frozenset[str], MaskTable] = field(default_factory=dict)

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
    table = masks.table(frozenset(roles))
    escalate = record_state(policy, record).escalate
    # sensitivity (static) -> (strategy name, masker), after the record's escalation
    cells = {s: table[escalate.get(s, s)] for s in SENSITIVITIES}
    walker = _Walker(cells)
    leaf, walk = walker.leaf, walker.walk
    fields = policy.fields
    out: dict[str, Any] = {}
    for key, value in record.items():
        spec = fields.get(key)
        if value is None:
            out[key] = None
        elif spec is not None and spec.children is None and spec.items is None:
            clear = cells[spec.sensitivity][0] == "clear"
            out[key] = value if clear else leaf(spec, value, key)
        else:
            out[key] = walk(spec, value, key)
    return MaskResult(out, walker.counts)


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
        shown = masker(value, spec.shape if spec is not None else "text", path)
        if shown is not None and type(shown) is type(value) and shown == value:
            shown = None  # a mask that happens to equal the value would reveal it
        counts = self.counts
        counts[name] = counts.get(name, 0) + 1
        return shown

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
