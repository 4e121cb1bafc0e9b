"""The gateway's vocabulary: every concept with a fixed set of values, declared once.

Why in ``common``: ``policies`` imports nothing else of ours and ``audit`` never
imports ``service``, yet all three speak of roles, purposes, actions, outcomes and
codes. ``common`` sits below all three and imports nothing of ours, so each of them can
use this module without a new dependency between them (``service`` ->
``policies``/``audit`` -> ``common``). What derives from it: the policy schema's
choices, the audit log's checks, the domain errors' codes, the metric label sets, the
configuration's checks, and (through tests that import it) the enums of ``service/openapi.yaml``.

Every member is a ``StrEnum``: it *is* its string (``Role.EDITOR == "editor"``, same
hash, same JSON), so values read from YAML, headers or JWT claims compare and hash as
members, while code that names a member is checked by mypy instead of at run time.

Systems are the one open set: :class:`System` names the four shipped upstreams, and
``service.registry`` describes each (connector, credentials, policy file, emulator).
Code that needs *the* systems iterates a registry, not this enum, so a registry with a
fifth system (tests/service/toy/) works without touching this module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, TypeVar

E = TypeVar("E", bound=StrEnum)


class System(StrEnum):
    """The upstream systems the gateway ships with (see ``service.registry``)."""

    TIMELOG = "timelog"
    BILLBEE = "billbee"
    SEDONA = "sedona"
    KEYCOM = "keycom"


#: the ``systems`` entry of a principal that may touch every system
EVERY_SYSTEM: Final = "*"


class Role(StrEnum):
    """What a principal may do (docs/api.md "Roles")."""

    EDITOR = "editor"
    AUDITOR = "auditor"
    PRIVACY_OFFICER = "privacy_officer"
    ADMIN = "admin"


class Purpose(StrEnum):
    """Why a caller reads or changes personal data (``X-Purpose``)."""

    CUSTOMER_SERVICE = "customer_service"
    BILLING = "billing"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"


#: What is recorded for a stated purpose outside :class:`Purpose`: the caller's text is
#: never kept (it may be anything, a name and a birth date included). Never valid itself.
UNKNOWN_PURPOSE: Final = "unknown"


class Action(StrEnum):
    """What an audit entry records was done (or tried)."""

    UPDATE = "update"
    DRY_RUN = "dry_run"
    READ = "read"
    REVEAL = "reveal"
    ERASE = "erase"
    EXPORT = "export"
    #: the retention period of a subject's sealed values ended: their keys were destroyed
    EXPIRE = "expire"


class ErasureReason(StrEnum):
    """Why a sealed value reads ``erased``: its subject's erasure (Art. 17) or the end
    of its retention period (Art. 5(1)(e))."""

    REQUEST = "request"
    RETENTION = "retention"


class Phase(StrEnum):
    """Which half of a write-ahead pair an audit entry is."""

    INTENT = "intent"
    OUTCOME = "outcome"
    #: a later resolution of an ``unknown`` outcome (a re-read of the upstream)
    RESOLUTION = "resolution"


class AuditOutcome(StrEnum):
    """How a recorded change ended."""

    APPLIED = "applied"
    REJECTED = "rejected"
    UPSTREAM_FAILED = "upstream_failed"
    UNKNOWN = "unknown"
    #: a ``resolution`` only: a re-read shows the values from before the change
    NOT_APPLIED = "not_applied"


class Verdict(StrEnum):
    """What the gateway decided about one change (the ``decisions_total`` outcome)."""

    ALLOWED = "allowed"
    DENIED = "denied"
    DRY_RUN = "dry_run"


class Problem(StrEnum):
    """Every problem code an answer may carry (``x-problem-catalog`` of openapi.yaml)."""

    BAD_REQUEST = "bad_request"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    PURPOSE_REQUIRED = "purpose_required"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    FIELD_NOT_EDITABLE = "field_not_editable"
    UNKNOWN_SYSTEM = "unknown_system"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    AUDIT_ENTRY_NOT_FOUND = "audit_entry_not_found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    CUSTOMER_ARCHIVED = "customer_archived"
    RECORD_RESTRICTED = "record_restricted"
    WOULD_CLEAR_UNKNOWN_FIELDS = "would_clear_unknown_fields"
    EDIT_CONFLICT = "edit_conflict"
    PRECONDITION_FAILED = "precondition_failed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_FAILED = "validation_failed"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    UPSTREAM_ERROR = "upstream_error"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"


#: the problems the policy engine's decide() can give
POLICY_PROBLEMS: Final = frozenset(
    {
        Problem.FORBIDDEN,
        Problem.PURPOSE_REQUIRED,
        Problem.PURPOSE_NOT_ALLOWED,
        Problem.FIELD_NOT_EDITABLE,
        Problem.CUSTOMER_ARCHIVED,
        Problem.RECORD_RESTRICTED,
        Problem.WOULD_CLEAR_UNKNOWN_FIELDS,
    }
)
#: the problems a policy's record-state rule may name (``deny:``, ``problem:``)
RULE_PROBLEMS: Final = (Problem.CUSTOMER_ARCHIVED, Problem.RECORD_RESTRICTED)
#: the problems a refusal may also name per field, in ``errors[].code``
FIELD_PROBLEMS: Final = frozenset(
    {
        Problem.FIELD_NOT_EDITABLE,
        Problem.PURPOSE_NOT_ALLOWED,
        Problem.WOULD_CLEAR_UNKNOWN_FIELDS,
        *RULE_PROBLEMS,
    }
)


class FieldCode(StrEnum):
    """What is wrong with one field (``errors[].code`` of a 422 and of upstream refusals)."""

    UNKNOWN_FIELD = "unknown_field"
    READ_ONLY = "read_only"
    WRONG_TYPE = "wrong_type"
    TOO_LONG = "too_long"
    TOO_SHORT = "too_short"
    NOT_IN_ENUM = "not_in_enum"
    PATTERN_MISMATCH = "pattern_mismatch"
    INVALID_FORMAT = "invalid_format"
    REQUIRED = "required"
    #: the upstream's own validation refused the field (the gateway's had let it pass)
    UPSTREAM_REJECTED = "upstream_rejected"


#: the field codes the policy engine's validate() gives (the validation-error metric)
VALIDATION_CODES: Final = tuple(c for c in FieldCode if c is not FieldCode.UPSTREAM_REJECTED)

def parse(kind: type[E], value: object) -> E | None:
    """The member of ``kind`` whose value is ``value``; ``None`` for anything else
    (``"billing" in Purpose`` raises on Python 3.11 when the text is not a member)."""
    if not isinstance(value, str):
        return None
    found = kind._value2member_map_.get(value)  # what kind(value) looks up first
    if found is not None:
        return found  # type: ignore[return-value]
    try:
        return kind(value)
    except ValueError:
        return None


__all__ = [
    "EVERY_SYSTEM",
    "FIELD_PROBLEMS",
    "POLICY_PROBLEMS",
    "RULE_PROBLEMS",
    "UNKNOWN_PURPOSE",
    "VALIDATION_CODES",
    "Action",
    "AuditOutcome",
    "ErasureReason",
    "FieldCode",
    "Phase",
    "Problem",
    "Purpose",
    "Role",
    "System",
    "Verdict",
    "parse",
]
