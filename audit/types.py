"""The values the gateway hands to the audit log and gets back from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from common.vocabulary import Action, AuditOutcome, Phase

ACTIONS: Final = frozenset(Action)
PHASES: Final = frozenset(Phase)
OUTCOMES: Final = frozenset(AuditOutcome)
SEALED_SENSITIVITIES: Final = frozenset({"personal", "restricted"})


@dataclass(frozen=True, init=False)
class Intent:
    """What the gateway is about to do (or decided) for one data subject.

    Frozen; its ``__init__`` is written out (all fields set in one step): the generated
    one of a frozen dataclass sets each field through ``object.__setattr__``, twice the
    cost, and every change makes one (issue 11)."""

    actor: str
    roles: tuple[str, ...]
    system: str
    customer_id: str
    purpose: str | None
    request_id: str
    action: str
    changed: tuple[str, ...]
    # values may be personal: never part of a repr that could reach a log line
    before: Mapping[str, Any] = field(repr=False)
    after: Mapping[str, Any] = field(repr=False)
    protected: Mapping[str, str] = field(repr=False)
    policy_version: str
    #: how many days the audit log may keep the sealed values (the policy's retention of
    #: their categories, the longest); None: kept until erased (audit.retention)
    retention_days: int | None = None

    def __init__(
        self,
        actor: str,
        roles: tuple[str, ...],
        system: str,
        customer_id: str,
        purpose: str | None,
        request_id: str,
        action: str,
        changed: tuple[str, ...],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        protected: Mapping[str, str],
        policy_version: str,
        retention_days: int | None = None,
    ) -> None:
        self.__dict__.update(
            actor=actor, roles=roles, system=system, customer_id=customer_id,
            purpose=purpose, request_id=request_id, action=action, changed=changed,
            before=before, after=after, protected=protected,
            policy_version=policy_version, retention_days=retention_days,
        )  # fmt: skip


@dataclass(frozen=True, init=False)
class Outcome:
    """How a forwarded (or refused) change ended. Its ``__init__`` is written out, as
    :class:`Intent`'s: every change makes one (issue 11, branch ``i11-rec``)."""

    outcome: str
    problem_code: str | None = None
    upstream_status: int | None = None
    upstream_latency_ms: float | None = None

    def __init__(
        self,
        outcome: str,
        problem_code: str | None = None,
        upstream_status: int | None = None,
        upstream_latency_ms: float | None = None,
    ) -> None:
        self.__dict__.update(
            outcome=outcome, problem_code=problem_code, upstream_status=upstream_status,
            upstream_latency_ms=upstream_latency_ms,
        )  # fmt: skip


@dataclass(frozen=True)
class Page:
    """One page of a query, newest first; ``next_cursor`` is None on the last page."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """The result of recomputing the chain and checking every signed checkpoint."""

    ok: bool
    entries: int
    head: str
    first_bad: str | None = None
    reason: str | None = None
    checkpoints: int = 0
