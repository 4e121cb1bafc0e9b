"""The engine's vocabulary and the values it hands back: field errors, decisions, masks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

TYPES: Final = ("string", "integer", "number", "boolean", "date", "datetime", "object", "array")
SENSITIVITIES: Final = ("public", "internal", "personal", "restricted")
SENSITIVITY_RANK: Final[Mapping[str, int]] = {s: i for i, s in enumerate(SENSITIVITIES)}
ROLES: Final = ("editor", "auditor", "privacy_officer", "admin")
PURPOSES: Final = ("customer_service", "billing", "contract", "legal_obligation")
# What is recorded for a stated purpose outside PURPOSES: the caller's text is never kept
# (it may be anything, a name and a birth date included). Never a valid purpose itself.
UNKNOWN_PURPOSE: Final = "unknown"
FORMATS: Final = ("email", "phone", "country_code", "date")
MODES: Final = ("put", "patch")

# Problem codes decide() can give, and the ones a record-state rule may name.
PROBLEMS: Final = (
    "forbidden",
    "purpose_required",
    "purpose_not_allowed",
    "field_not_editable",
    "customer_archived",
    "record_restricted",
    "would_clear_unknown_fields",
)
RULE_PROBLEMS: Final = ("customer_archived", "record_restricted")

# Field error codes validate() can give (API.md, 422 validation_failed).
FIELD_CODES: Final = (
    "unknown_field",
    "read_only",
    "wrong_type",
    "too_long",
    "too_short",
    "not_in_enum",
    "pattern_mismatch",
    "invalid_format",
    "required",
)

# What the caller sees of a value nobody's role allows: deny by default.
UNKNOWN_SENSITIVITY: Final = "restricted"


def stricter(a: str, b: str) -> str:
    """The higher of two sensitivities."""
    return a if SENSITIVITY_RANK[a] >= SENSITIVITY_RANK[b] else b


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field: where, a code from the vocabulary, a sentence without the value."""

    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What decide() concluded about one change; never holds values in ``detail``."""

    allowed: bool
    problem: str | None
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
