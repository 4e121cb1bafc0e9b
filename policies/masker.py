"""mask(): a record as one caller may see it, field by field, after record-state rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.compiled import CompiledPolicy, FieldSpec
from policies.masking.base import Bound, Masker, MaskingKeys, bind
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
    counts: dict[str, int] = {}
    # every field as it is (None stays None), in the record's order; then only the fields
    # a step masks are replaced, in place: the fields shown as they are are not visited
    # one by one (issue 11)
    out: dict[str, Any] = dict(record)
    # the leaves, by strategy: each field's masker bound to it once per plan (issue 11)
    for name, leaves in plan.leaves:
        masked = 0
        for key, bound in leaves:
            value = out.get(key)
            if value is None:  # absent, or null: nothing to mask
                continue
            masked += 1
            shown = bound(value)
            # as _shown: a mask that happens to equal the value would reveal it
            if shown is not None and type(shown) is type(value) and shown == value:
                shown = None
            out[key] = shown
        if masked:
            counts[name] = masked
    paths = plan.paths
    for key, node in plan.nodes:  # an object or a list the policy describes
        value = out.get(key)
        if value is not None:
            out[key] = _masked_at(node, value, key, counts) if paths else _masked(
                node, value, counts
            )
    unknown = plan.unknown
    if unknown is not None and not plan.known.issuperset(record):
        for key in record:  # members the policy does not name, in the record's order
            value = out[key]
            if value is not None and key not in plan.known:
                out[key] = _masked_at(unknown, value, key, counts) if paths else _masked(
                    unknown, value, counts
                )
    return MaskResult(out, counts)


#: a leaf's step: (strategy name, the masker bound to the field, the masker, the shape)
#: - the bound one where the path is known (or does not matter), the masker and the
#: shape for a walk that works out each path (a strategy that uses it, under a list)
_Leaf = tuple[str, Bound, Masker, str]


class _Node:
    """The step of a field the policy describes as an object (``children``: each
    member's step; ``masked``: the members a step masks or walks, ``known``: every
    member named) or a list (``items``: each item's step); ``leaf`` for a value of
    another type, ``unknown`` for a member the policy does not name."""

    __slots__ = ("children", "items", "known", "leaf", "masked", "unknown")

    def __init__(
        self,
        spec: FieldSpec,
        cells: dict[str, tuple[str, Masker]],
        unknown: _Step,
        path: str,
    ) -> None:
        self.leaf = _leaf_step(cells[spec.sensitivity], spec.shape, path)
        self.unknown = unknown
        self.children: dict[str, _Step] | None = None
        self.masked: tuple[tuple[str, _Step], ...] = ()
        self.known: frozenset[str] = frozenset()
        if spec.children is not None:
            self.children = {
                name: _step(child, cells, unknown, f"{path}.{name}")
                for name, child in spec.children.items()
            }
            self.masked = tuple((k, s) for k, s in self.children.items() if s is not None)
            self.known = frozenset(self.children)
        # an item's path has its index: bound without it (see _Plan.paths); an item node
        # is kept even when it shows all (None would mask the list as the field's leaf)
        self.items = (
            _step(spec.items, cells, unknown, "", keep=True) if spec.items is not None else None
        )

    def shows_all(self) -> bool:
        """Whether every value under this field is shown as it is (nothing to walk)."""
        items = self.items
        return (
            self.leaf is None
            and self.unknown is None
            and not self.masked
            and (items is None or (isinstance(items, _Node) and items.shows_all()))
        )


#: a field's step: None (shown as it is), a leaf's, or the :class:`_Node` of an object
#: or a list
_Step = _Leaf | _Node | None


def _step(
    spec: FieldSpec,
    cells: dict[str, tuple[str, Masker]],
    unknown: _Step,
    path: str,
    *,
    keep: bool = False,
) -> _Step:
    """``spec``'s step; None for an object or a list whose every value is shown as it is
    (not walked at all), unless ``keep``."""
    if spec.children is None and spec.items is None:
        return _leaf_step(cells[spec.sensitivity], spec.shape, path)
    node = _Node(spec, cells, unknown, path)
    return None if not keep and node.shows_all() else node


def _masked(step: _Step, value: Any, counts: dict[str, int]) -> Any:
    """``value`` as ``step`` shows it, with the bound maskers (no path worked out);
    ``counts`` the values masked, by strategy. (A module function, not a closure: no
    reference cycle per record, see docs/performance.md "Garbage collector".)"""
    if value is None or step is None:
        return value
    if type(step) is tuple:
        name = step[0]
        counts[name] = counts.get(name, 0) + 1
        return _shown(step[1](value), value)
    assert isinstance(step, _Node)
    if step.children is not None and isinstance(value, dict):
        out = dict(value)
        for key, child in step.masked:
            member = out.get(key)
            if member is not None:
                out[key] = _masked(child, member, counts)
        unknown = step.unknown
        if unknown is not None and not step.known.issuperset(value):
            for key, member in value.items():
                if member is not None and key not in step.known:
                    out[key] = _masked(unknown, member, counts)
        return out
    if step.items is not None and isinstance(value, list):
        item = step.items
        return [_masked(item, v, counts) for v in value]
    return _masked(step.leaf, value, counts)


def _masked_at(step: _Step, value: Any, path: str, counts: dict[str, int]) -> Any:
    """As :func:`_masked`, working out each value's path for the masker (a plan with a
    strategy that uses it: ``aesgcm``)."""
    if value is None or step is None:
        return value
    if type(step) is tuple:
        name, _, masker, shape = step
        counts[name] = counts.get(name, 0) + 1
        return _shown(masker(value, shape, path), value)
    assert isinstance(step, _Node)
    if step.children is not None and isinstance(value, dict):
        children, unknown = step.children, step.unknown
        return {
            k: _masked_at(children.get(k, unknown), v, f"{path}.{k}", counts)
            for k, v in value.items()
        }
    if step.items is not None and isinstance(value, list):
        item = step.items
        return [_masked_at(item, v, f"{path}[{i}]", counts) for i, v in enumerate(value)]
    return _masked_at(step.leaf, value, path, counts)


class _Plan:
    """For one role set and one record state: the top-level fields' leaves, each bound
    to its masker and grouped by strategy (``leaves``), the fields the policy describes
    as objects or lists (``nodes``), in the policy's order, and the step of a member the
    policy does not name (its whole value masked as unknown text); ``known``: every
    field the policy names; ``paths``: whether a strategy of the plan uses a value's
    path (then nodes and unknown members are walked working out each path)."""

    __slots__ = ("known", "leaves", "masked", "nodes", "paths", "unknown")

    def __init__(
        self, policy: CompiledPolicy, table: MaskTable, escalate: Mapping[str, str]
    ) -> None:
        # sensitivity (static) -> (strategy name, masker), after the record's escalation
        cells = {s: table[escalate.get(s, s)] for s in SENSITIVITIES}
        self.paths = any(m.uses_path for name, m in cells.values() if name != "clear")
        self.unknown = unknown = _leaf_step(cells[UNKNOWN_SENSITIVITY], "text", "")
        steps = {key: _step(spec, cells, unknown, key) for key, spec in policy.fields.items()}
        self.masked = tuple((key, step) for key, step in steps.items() if step is not None)
        self.known = frozenset(steps)
        by_name: dict[str, list[tuple[str, Bound]]] = {}
        for key, step in self.masked:
            if type(step) is tuple:
                by_name.setdefault(step[0], []).append((key, step[1]))
        self.leaves = tuple((name, tuple(fields)) for name, fields in by_name.items())
        self.nodes = tuple((k, s) for k, s in self.masked if isinstance(s, _Node))


def _shown(shown: Any, value: Any) -> Any:
    """A masked value as shown: None for a mask that happens to equal the value (it
    would reveal it)."""
    if shown is not None and type(shown) is type(value) and shown == value:
        return None
    return shown


def _leaf_step(cell: tuple[str, Masker], shape: str, path: str) -> _Step:
    """A leaf's step (None: shown as it is), its masker bound to ``shape`` and ``path``
    (a member whose path varies, an item or an unknown member, has ``path`` "")."""
    name, masker = cell
    return None if name == "clear" else (name, bind(masker, shape, path), masker, shape)
