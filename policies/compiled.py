"""A policy compiled into plain tables: field specs by name and path, rules as functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from common.vocabulary import Problem, Role
from policies.controls import STRICT
from policies.model import SENSITIVITY_RANK, UNKNOWN_SENSITIVITY
from policies.processing import Processing

RecordTest = Callable[[Mapping[str, Any]], bool]
INDEX = re.compile(r"\[\d+\]")
#: how many sets of paths a policy keeps the retention of (CompiledPolicy.retention_days)
RETENTION_CACHE_SIZE = 4096
_NOT_CACHED: Any = object()


@dataclass(eq=False, slots=True)
class FieldSpec:
    """One field as the engine uses it; ``path`` is normalised (``MetaData[].Value``)."""

    name: str
    path: str
    type: str
    description: str = ""
    read_only: bool = False
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    enum: tuple[Any, ...] | None = None
    pattern: re.Pattern[str] | None = None
    pattern_text: str | None = None
    format: str | None = None
    category: str | None = None
    sensitivity: str = UNKNOWN_SENSITIVITY
    edit_roles: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    children: dict[str, FieldSpec] | None = None
    items: FieldSpec | None = None
    shape: str = "text"
    #: the control characters this string field accepts (``allow_controls``), and the
    #: pattern that finds any other one (policies.controls)
    allow_controls: tuple[str, ...] = ()
    refused: re.Pattern[str] = STRICT

    def constraints(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("min_length", "max_length", "min_items", "max_items", "format"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.pattern_text is not None:
            out["pattern"] = self.pattern_text
        if self.allow_controls:
            out["allow_controls"] = list(self.allow_controls)
        return out


@dataclass(frozen=True, slots=True)
class DenyRule:
    name: str
    test: RecordTest
    problem: Problem


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity (a cache key)
class EscalateRule:
    name: str
    test: RecordTest
    escalate: Mapping[str, str]
    edit_roles: frozenset[str]
    problem: Problem


@dataclass(frozen=True, slots=True)
class StrategyRef:
    """A masking table cell: the strategy's name and its raw options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class CompiledPolicy:
    """The policy of one system, ready for evaluation: no parsing at request time."""

    system: str
    version: str
    mode: Literal["put", "patch"]
    id_field: str
    title: str
    fields: dict[str, FieldSpec]
    by_path: dict[str, FieldSpec]
    writable_fields: frozenset[str]
    deny_rules: tuple[DenyRule, ...]
    escalate_rules: tuple[EscalateRule, ...]
    masking: Mapping[str, Mapping[str, StrategyRef]]
    source: str = ""
    # writable top-level fields a whole-object PUT must know, in policy order
    clear_candidates: tuple[str, ...] = ()
    # top-level object fields (a patch may give them in part)
    object_fields: tuple[str, ...] = ()
    #: the processing activity (record of processing, audit retention); None: not stated
    processing: Processing | None = None
    # RecordState per tuple of active escalation rules (filled by policies.state)
    state_cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    #: the one escalation rule's test and the RecordState it gives, when the policy has
    #: exactly one (policies.state.single_rule; set by compile_policy); None: the loop
    single_rule: tuple[RecordTest, Any] | None = field(default=None, repr=False)
    #: retention_days by tuple of paths, at most RETENTION_CACHE_SIZE; a reload compiles
    #: new policies, so it starts empty with them
    retention_cache: dict[tuple[str, ...], int | None] = field(
        default_factory=dict, repr=False
    )

    def retention_days(self, paths: Iterable[str]) -> int | None:
        """How long the audit log may keep the sealed values of ``paths`` (field paths,
        indexes allowed): the longest retention of their data categories; None when the
        policy states no retention (kept until erased) or no path is given."""
        if self.processing is None:
            return None
        # the same paths come with nearly every change: worked out once per policy
        # (issue 11), up to RETENTION_CACHE_SIZE sets of them
        key = paths if type(paths) is tuple else tuple(paths)
        cache = self.retention_cache
        found = cache.get(key, _NOT_CACHED)
        if found is not _NOT_CACHED:
            return found  # type: ignore[no-any-return]
        days = self.retention_days_uncached(key)
        if len(cache) < RETENTION_CACHE_SIZE:
            cache[key] = days
        return days

    def retention_days_uncached(self, paths: Iterable[str]) -> int | None:
        """:meth:`retention_days` worked out from the policy, without the cache."""
        if self.processing is None:
            return None
        retention = self.processing.retention
        days = [
            retention.days_for(spec.category if spec is not None else None)
            for spec in (self.spec_for(path) for path in paths)
        ]
        return max(days) if days else None

    @property
    def needs_pre_image(self) -> bool:
        """Whether decide() needs the upstream record: whole-object systems and rules do."""
        return self.mode == "put" or bool(self.deny_rules or self.escalate_rules)

    def spec_for(self, path: str) -> FieldSpec | None:
        """The spec of ``path`` (indexes allowed: ``MetaData[2].Value``), or None."""
        return self.by_path.get(INDEX.sub("[]", path))

    def walk(self) -> Iterator[FieldSpec]:
        yield from _walk(self.fields)

    def mask_strategy(self, role: str, sensitivity: str) -> str:
        ref = self.masking.get(role, {}).get(sensitivity)
        return ref.name if ref is not None else "redact"

    def field_table(self) -> list[dict[str, Any]]:
        """JSON-ready rows, one per field (nested ones included), in policy order."""
        rows: list[dict[str, Any]] = []
        escalating = [r for r in self.escalate_rules]
        for spec in self.walk():
            raised = [
                r.name for r in escalating if spec.sensitivity in r.escalate
            ]
            rows.append(
                {
                    "path": spec.path,
                    "type": spec.type,
                    "constraints": spec.constraints(),
                    "read_only": spec.read_only,
                    "required": spec.required,
                    "description": spec.description,
                    "category": spec.category,
                    "sensitivity": spec.sensitivity,
                    "raised_by_rules": raised,
                    "editable_by": sorted(spec.edit_roles),
                    "purposes": sorted(spec.purposes),
                    "masking": {
                        role: self.mask_strategy(role, spec.sensitivity) for role in Role
                    },
                }
            )
        return rows


def _walk(fields: Mapping[str, FieldSpec]) -> Iterator[FieldSpec]:
    for spec in fields.values():
        yield spec
        if spec.children is not None:
            yield from _walk(spec.children)
        if spec.items is not None:
            yield spec.items
            if spec.items.children is not None:
                yield from _walk(spec.items.children)


def max_sensitivity(specs: Iterator[FieldSpec] | list[FieldSpec], start: str) -> str:
    best = start
    for spec in specs:
        if SENSITIVITY_RANK[spec.sensitivity] > SENSITIVITY_RANK[best]:
            best = spec.sensitivity
    return best
