"""Fault injection: latency, a status for the next N requests, connection resets, hangs,
cut-short answers - before the request is processed, or (``after_write``) after it.

A ``FaultPlan`` is set at construction (``create_emulator(..., faults=...)``) or through
``POST /_emulator/faults``; a ``FaultState`` holds the live, counting copy.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the longest a hung request waits before its connection is dropped anyway
HANG_MAX_SECONDS = 300.0


class FaultPlanError(ValueError):
    """A fault plan that cannot be used; the message names the key."""


@dataclass(slots=True)
class FaultPlan:
    """What to do to the next matching requests.

    ``latency_ms`` delays every matching request while the plan is set. ``status`` is
    answered (in the system's own error format) to the next ``count`` matching requests,
    with ``Retry-After: retry_after`` when that is set. ``reset`` next requests get their
    TCP connection reset (RST, no answer); ``hang`` next requests are never answered
    (until the faults are cleared, the emulator stops, or ``HANG_MAX_SECONDS``).
    ``malformed`` next requests get a 200 whose JSON body is cut short.
    ``after_write``: a hang, reset or malformed answer strikes only after the request was
    processed (a write is applied, its answer lost or cut short); by default it strikes
    before (nothing is applied).
    ``methods`` limits the plan to those HTTP methods (``None``: all).
    Order per request: latency, then hang, then reset, then malformed, then status.
    """

    latency_ms: int = 0
    status: int | None = None
    count: int = 0
    reset: int = 0
    hang: int = 0
    methods: frozenset[str] | None = None
    retry_after: int | None = None
    malformed: int = 0
    after_write: bool = False

    def __post_init__(self) -> None:
        for name in ("latency_ms", "count", "reset", "hang", "malformed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FaultPlanError(f"{name} must be an integer >= 0")
        if self.status is not None:
            if isinstance(self.status, bool) or not isinstance(self.status, int):
                raise FaultPlanError("status must be an integer HTTP status")
            if not 200 <= self.status <= 599:
                raise FaultPlanError("status must be between 200 and 599")
        if self.retry_after is not None and (
            isinstance(self.retry_after, bool)
            or not isinstance(self.retry_after, int)
            or self.retry_after < 0
        ):
            raise FaultPlanError("retry_after must be an integer >= 0")
        if not isinstance(self.after_write, bool):
            raise FaultPlanError("after_write must be true or false")
        if self.methods is not None:
            self.methods = frozenset(m.upper() for m in self.methods)

    @classmethod
    def from_json(cls, data: object) -> FaultPlan:
        """Build from the admin endpoint's JSON body; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise FaultPlanError("the body must be a JSON object")
        known = {"latency_ms", "status", "count", "reset", "hang", "methods", "retry_after",
                 "malformed", "after_write"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultPlanError(f"unknown keys: {', '.join(map(str, unknown))}")
        methods = data.get("methods")
        if methods is not None and (
            not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
        ):
            raise FaultPlanError("methods must be a list of strings")
        status = data.get("status")
        count = data.get("count", 1 if status is not None else 0)
        return cls(
            latency_ms=data.get("latency_ms", 0),
            status=status,
            count=count,
            reset=data.get("reset", 0),
            hang=data.get("hang", 0),
            methods=None if methods is None else frozenset(methods),
            retry_after=data.get("retry_after"),
            malformed=data.get("malformed", 0),
            after_write=data.get("after_write", False),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "status": self.status,
            "count": self.count,
            "reset": self.reset,
            "hang": self.hang,
            "methods": None if self.methods is None else sorted(self.methods),
            "retry_after": self.retry_after,
            "malformed": self.malformed,
            "after_write": self.after_write,
        }


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What the middleware does to one request."""

    latency_s: float = 0.0
    hang: bool = False
    reset: bool = False
    malformed: bool = False
    status: int | None = None
    retry_after: int | None = None
    #: the request is processed first (hang, reset, malformed strike its answer)
    after_write: bool = False


NO_FAULT = FaultAction()


@dataclass(slots=True)
class FaultState:
    """The live plan of one emulator; ``initial`` is what ``reset`` restores."""

    initial: FaultPlan = field(default_factory=FaultPlan)
    plan: FaultPlan = field(default_factory=FaultPlan)
    _release: asyncio.Event | None = None

    @classmethod
    def starting_with(cls, plan: FaultPlan | None) -> FaultState:
        start = plan if plan is not None else FaultPlan()
        return cls(initial=copy.copy(start), plan=copy.copy(start))

    def set(self, plan: FaultPlan) -> None:
        self.plan = plan

    def clear(self) -> None:
        self.plan = FaultPlan()
        self.release_hung()

    def restore(self) -> None:
        self.plan = copy.copy(self.initial)
        self.release_hung()

    def take(self, method: str) -> FaultAction:
        """Consume the plan for one request with ``method``."""
        plan = self.plan
        if plan.methods is not None and method.upper() not in plan.methods:
            return NO_FAULT
        latency = plan.latency_ms / 1000.0
        if plan.hang > 0:
            plan.hang -= 1
            return FaultAction(latency_s=latency, hang=True, after_write=plan.after_write)
        if plan.reset > 0:
            plan.reset -= 1
            return FaultAction(latency_s=latency, reset=True, after_write=plan.after_write)
        if plan.malformed > 0:
            plan.malformed -= 1
            return FaultAction(latency_s=latency, malformed=True, after_write=plan.after_write)
        if plan.status is not None and plan.count > 0:
            plan.count -= 1
            return FaultAction(latency_s=latency, status=plan.status, retry_after=plan.retry_after)
        return FaultAction(latency_s=latency) if latency else NO_FAULT

    def release_event(self) -> asyncio.Event:
        if self._release is None:
            self._release = asyncio.Event()
        return self._release

    def release_hung(self) -> None:
        """Let every hung request go (their connections are then dropped)."""
        if self._release is not None:
            self._release.set()
            self._release = None
