"""Record-state escalation: which rules hold for a record, and what they raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.compiled import CompiledPolicy, EscalateRule
from policies.model import SENSITIVITY_RANK


@dataclass(frozen=True, slots=True)
class RecordState:
    """The escalation rules that hold for one record: ``escalate`` maps a field's static
    sensitivity to the raised one, ``raised_by`` names the rule that raised it."""

    escalate: Mapping[str, str]
    raised_by: Mapping[str, EscalateRule]
    rules: tuple[EscalateRule, ...]

    def sensitivity(self, static: str) -> str:
        return self.escalate.get(static, static)


NO_STATE = RecordState({}, {}, ())


def _build(active: tuple[EscalateRule, ...]) -> RecordState:
    escalate: dict[str, str] = {}
    raised_by: dict[str, EscalateRule] = {}
    for rule in active:
        for src, dst in rule.escalate.items():
            old = escalate.get(src, src)
            if SENSITIVITY_RANK[dst] > SENSITIVITY_RANK[old]:
                escalate[src] = dst
            raised_by.setdefault(src, rule)
    return RecordState(escalate, raised_by, active)


def record_state(policy: CompiledPolicy, record: Mapping[str, Any] | None) -> RecordState:
    """Evaluate the escalation rules on ``record``; an unknown record (None) fails closed:
    every rule is taken to hold."""
    rules = policy.escalate_rules
    if not rules:
        return NO_STATE
    active = rules if record is None else tuple([r for r in rules if r.test(record)])
    if not active:
        return NO_STATE
    cache = policy.state_cache
    state = cache.get(active)
    if state is None:
        state = cache[active] = _build(active)
    return state
