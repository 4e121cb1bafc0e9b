"""The policy format's own vocabulary and the values the engine hands back.

Roles, purposes, problem and field codes are the gateway's: :mod:`common.vocabulary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from common.vocabulary import FieldCode, Problem

TYPES: Final = ("string", "integer", "number", "boolean", "date", "datetime", "object", "array")
SENSITIVITIES: Final = ("public", "internal", "personal", "restricted")
SENSITIVITY_RANK: Final[Mapping[str, int]] = {s: i for i, s in enumerate(SENSITIVITIES)}
FORMATS: Final = ("email", "phone", "country_code", "date")
MODES: Final = ("put", "patch")

# What the caller sees of a value nobody's role allows: deny by default.
UNKNOWN_SENSITIVITY: Final = "restricted"


def stricter(a: str, b: str) -> str:
    """The higher of two sensitivities."""
    return a if SENSITIVITY_RANK[a] >= SENSITIVITY_RANK[b] else b


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field: where, a code from the vocabulary, a sentence without the value."""

    path: str
    code: FieldCode | Problem
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What decide() concluded about one change; never holds values in ``detail``."""

    allowed: bool
    problem: Problem | None
    detail: str
    errors: tuple[FieldError, ...] = ()
    changed: tuple[str, ...] = ()
    # values stay out of repr: a decision may be logged, the values in it may not
    merged: dict[str, Any] | None = field(default=None, repr=False)
    protection: Mapping[str, str] = field(default_factory=dict)
    before: Mapping[str, Any] = field(default_factory=dict, repr=False)
    after: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class MaskResult:
    """A record as one caller may see it, and how many values each strategy masked."""

    record: dict[str, Any] = field(repr=False)  # may hold clear values (privacy officer)
    counts: Mapping[str, int]


class PolicyLoadError(ValueError):
    """One or more policy files are invalid; ``errors`` holds every "file:line key: message"."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        summary = errors[0] if len(errors) == 1 else f"{len(errors)} errors, first: {errors[0]}"
        super().__init__(f"invalid policy: {summary}")
