"""Check a merge patch against a policy: every field error at once, never the value."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final

from common.vocabulary import FieldCode
from policies.compiled import CompiledPolicy, FieldSpec
from policies.model import FieldError

EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
PHONE: Final = re.compile(r"\+?[0-9 ()./\-]{4,32}")
# PHONE with at least four digits, in one match (issue 11: no Python loop per character;
# PHONE takes ASCII only, so its digits are [0-9]; the OpenAPI document's pattern too)
PHONE_DIGITS: Final = re.compile(f"(?=(?:[^0-9]*[0-9]){{4}}){PHONE.pattern}")
COUNTRY: Final = re.compile(r"[A-Z]{2,3}")
# ASCII digits only ([0-9], not \d: a str pattern's \d takes every Unicode digit)
DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATETIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))?"
)
_REFUSED_MESSAGE: Final = "contains a control character or an unpaired surrogate"
# RFC 7493 (I-JSON) 2.2: beyond this an integer is not interoperable; an upstream would
# refuse it or read another number
MAX_SAFE_INTEGER: Final = 2**53 - 1
MAX_ERRORS: Final = 200  # a patch of thousands of bad fields does not get thousands of lines


def _is_email(value: str) -> bool:
    return len(value) <= 254 and EMAIL.fullmatch(value) is not None


def _is_phone(value: str) -> bool:
    return PHONE_DIGITS.fullmatch(value) is not None


def _is_country(value: str) -> bool:
    return COUNTRY.fullmatch(value) is not None


def _is_iso_date(value: str) -> bool:
    """The ``date`` format: the same calendar date as the ``date`` type."""
    return _is_date_only(value)


def _is_date_only(value: str) -> bool:
    """``YYYY-MM-DD``, a real day. Not ``date.fromisoformat`` alone: in 3.11 it also takes
    ISO week dates (``2024-W01-1``, ten characters too) and the basic form (``20240101``)."""
    return DATE.fullmatch(value) is not None and _real_day(value)


def _is_datetime(value: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS``, an optional fraction, then ``Z``, ``±HH:MM`` or nothing:
    the extended form every upstream answers with. ``datetime.fromisoformat`` would also
    take a date alone, week dates, a space for the T, an hour alone, offsets in seconds."""
    match = DATETIME.fullmatch(value)
    if match is None or not _real_day(value[:10]):
        return False
    hour, minute, second, off_hour, off_minute = match.groups()
    return (
        int(hour) < 24 and int(minute) < 60 and int(second) < 60
        and (off_hour is None or (int(off_hour) < 24 and int(off_minute) < 60))
    )


def _real_day(value: str) -> bool:
    try:
        date.fromisoformat(value)  # only ever YYYY-MM-DD here: checks the day exists
    except ValueError:
        return False
    return True


FORMAT_CHECKS: Final[Mapping[str, tuple[Callable[[str], bool], str]]] = {
    "email": (_is_email, "an email address"),
    "phone": (_is_phone, "a phone number (digits, spaces, + ( ) . / -)"),
    "country_code": (_is_country, "a country code (ISO 3166 alpha-2 or alpha-3, upper case)"),
    "date": (_is_iso_date, "an ISO 8601 date (YYYY-MM-DD)"),
}


def validate_patch(policy: CompiledPolicy, patch: Any) -> list[FieldError]:
    """All field errors of ``patch`` (a JSON merge patch in the system's field names)."""
    errors: list[FieldError] = []
    if not isinstance(patch, Mapping):
        return [FieldError("", FieldCode.WRONG_TYPE, "the patch must be a JSON object")]
    _members(policy.fields, patch, "", errors, True)
    return errors[:MAX_ERRORS]


def _members(
    fields: Mapping[str, FieldSpec],
    obj: Mapping[Any, Any],
    prefix: str,
    errors: list[FieldError],
    merge: bool,
) -> None:
    for key, value in obj.items():
        spec = fields.get(key) if isinstance(key, str) else None
        path = f"{prefix}{key}"
        if spec is None:
            errors.append(FieldError(
                path, FieldCode.UNKNOWN_FIELD, "is not a field of this system",
            ))
        else:
            _value(spec, value, path, errors, merge)
        if len(errors) >= MAX_ERRORS:
            return


def _value(spec: FieldSpec, value: Any, path: str, errors: list[FieldError], merge: bool) -> None:
    if spec.read_only:
        errors.append(FieldError(path, FieldCode.READ_ONLY, "is read-only"))
        return
    if value is None:
        if spec.required:
            errors.append(FieldError(path, FieldCode.REQUIRED, "is required and cannot be null"))
        return
    t = spec.type
    if t == "string":
        _string(spec, value, path, errors)
    elif t == "integer":
        if type(value) is not int:
            errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected an integer"))
        elif not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            errors.append(FieldError(
                path, FieldCode.WRONG_TYPE, "expected an integer within ±(2^53-1)",
            ))
        elif spec.enum is not None and value not in spec.enum:
            errors.append(FieldError(
                path, FieldCode.NOT_IN_ENUM, f"expected one of {list(spec.enum)}",
            ))
    elif t == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected a number"))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected a finite number"))
        elif spec.enum is not None and value not in spec.enum:
            errors.append(FieldError(
                path, FieldCode.NOT_IN_ENUM, f"expected one of {list(spec.enum)}",
            ))
    elif t == "boolean":
        if type(value) is not bool:
            errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected true or false"))
    elif t == "date" or t == "datetime":
        if not isinstance(value, str):
            errors.append(FieldError(path, FieldCode.WRONG_TYPE, f"expected a {t} string"))
        elif not (_is_date_only(value) if t == "date" else _is_datetime(value)):
            what = "YYYY-MM-DD" if t == "date" else "an ISO 8601 date-time"
            errors.append(FieldError(path, FieldCode.INVALID_FORMAT, f"expected {what}"))
    elif t == "object":
        if not isinstance(value, Mapping):
            errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected an object"))
        elif spec.children is not None:
            _members(spec.children, value, f"{path}.", errors, merge)
    elif t == "array":
        _array(spec, value, path, errors)


def _string(spec: FieldSpec, value: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(value, str):
        errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected a string"))
        return
    # printable ASCII holds no control character: the common case skips the pattern
    if not (value.isascii() and value.isprintable()) and spec.refused.search(value):
        errors.append(FieldError(path, FieldCode.INVALID_FORMAT, _REFUSED_MESSAGE))
        return
    n = len(value)
    if spec.max_length is not None and n > spec.max_length:
        errors.append(FieldError(
            path, FieldCode.TOO_LONG, f"longer than {spec.max_length} characters",
        ))
    elif spec.min_length is not None and n < spec.min_length:
        errors.append(FieldError(
            path, FieldCode.TOO_SHORT, f"shorter than {spec.min_length} characters",
        ))
    elif spec.enum is not None and value not in spec.enum:
        errors.append(FieldError(path, FieldCode.NOT_IN_ENUM, f"expected one of {list(spec.enum)}"))
    elif spec.pattern is not None and spec.pattern.fullmatch(value) is None:
        errors.append(FieldError(path, FieldCode.PATTERN_MISMATCH, "does not match the pattern"))
    elif spec.format is not None and value:
        check, what = FORMAT_CHECKS[spec.format]
        if not check(value):
            errors.append(FieldError(path, FieldCode.INVALID_FORMAT, f"expected {what}"))


def _array(spec: FieldSpec, value: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(value, list):
        errors.append(FieldError(path, FieldCode.WRONG_TYPE, "expected an array"))
        return
    if spec.max_items is not None and len(value) > spec.max_items:
        errors.append(FieldError(path, FieldCode.TOO_LONG, f"more than {spec.max_items} items"))
    elif spec.min_items is not None and len(value) < spec.min_items:
        errors.append(FieldError(path, FieldCode.TOO_SHORT, f"fewer than {spec.min_items} items"))
    items = spec.items
    if items is None:
        return
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if item is None:
            errors.append(FieldError(
                item_path, FieldCode.WRONG_TYPE, f"expected {_article(items.type)}",
            ))
        else:
            _value(items, item, item_path, errors, False)
        if len(errors) >= MAX_ERRORS:
            return


def _article(t: str) -> str:
    return f"an {t}" if t[0] in "aeiou" else f"a {t}"
