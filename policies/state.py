"""Record-state escalation: which rules hold for a record, and what they raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.compiled import CompiledPolicy, EscalateRule, RecordTest
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


def single_rule(policy: CompiledPolicy) -> tuple[RecordTest, RecordState] | None:
    """A policy of one escalation rule (the usual case): its test and the state it gives
    when it holds, for :func:`record_state` to decide with one call (issue 11); None for
    any other number of rules."""
    rules = policy.escalate_rules
    if len(rules) != 1:
        return None
    state = policy.state_cache.get(rules)
    if state is None:
        state = policy.state_cache[rules] = _build(rules)
    return rules[0].test, state


def record_state(policy: CompiledPolicy, record: Mapping[str, Any] | None) -> RecordState:
    """Evaluate the escalation rules on ``record``; an unknown record (None) fails closed:
    every rule is taken to hold."""
    single = policy.single_rule
    if single is not None and record is not None:
        return single[1] if single[0](record) else NO_STATE
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
