"""Read the field names out of an upstream's validation error, and nothing else.

The upstreams' own messages may quote the value they refused (a name, an email), so
they are never passed on: each named field gets the same fixed message. Field names
are checked against a strict pattern so that a value can never travel as a "name".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from common.vocabulary import FieldCode
from service.errors import FieldProblem

CODE: Final = FieldCode.UPSTREAM_REJECTED
MESSAGE: Final = "the upstream refused this field"

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_NAME = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT}|\[[0-9]{{1,4}}\]){{0,8}}")
#: keys of error documents that are not field names
_ENVELOPE_KEYS: Final = frozenset(
    {
        "detail", "details", "Details", "message", "Message", "ModelState", "modelState",
        "non_field_errors", "Code", "code", "DeveloperNote", "Parameters", "Url",
        "ErrorCode", "ErrorMessage", "ErrorDescription", "Data", "errors", "Errors",
        "title", "status", "type",
    }
)
#: prefixes ASP.NET puts before model-state keys (the action's parameter name)
_PREFIXES: Final = ("customer.", "model.", "value.", "request.")


def safe_field_name(name: object) -> str | None:
    """``name`` if it looks like a field path (``A``, ``A.B``, ``A[0].B``), else ``None``."""
    if not isinstance(name, str):
        return None
    for prefix in _PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("$."):
        name = name[2:]
    return name if _NAME.fullmatch(name) else None


def problems_for(
    names: Iterable[object],
    rename: Callable[[str], str] | None = None,
    known: Collection[str] | None = None,
) -> list[FieldProblem]:
    """One ``FieldProblem`` per distinct safe name, in first-seen order.

    ``known``: the system's field names; a name whose first segment is not one of them
    is dropped (an upstream message could otherwise smuggle a value in as a "name").
    """
    seen: dict[str, None] = {}
    for raw in names:
        name = safe_field_name(raw)
        if name is None:
            continue
        if rename is not None:
            name = rename(name)
        if known is not None and re.split(r"[.\[]", name, maxsplit=1)[0] not in known:
            continue
        seen.setdefault(name, None)
    return [FieldProblem(name, CODE, MESSAGE) for name in seen]


def field_names(body: Any) -> list[object]:
    """Candidate field names in the usual error shapes:

    * ASP.NET Web API: ``{"Message": ..., "ModelState": {"customer.Name": ["..."]}}``
    * Django REST framework: ``{"name": ["..."], "sms_numbers": {"0": ["..."]}}``
    * a list form: ``{"errors": [{"field": "Name", ...}]}`` or ``{"Details": [...]}``
      whose items carry ``field``/``Field``/``PropertyName``/``Parameter``
    """
    names: list[object] = []
    if not isinstance(body, Mapping):
        return names
    for key in ("ModelState", "modelState"):
        state = body.get(key)
        if isinstance(state, Mapping):
            names.extend(state.keys())
    for key in ("errors", "Errors", "Details", "details"):
        items = body.get(key)
        if isinstance(items, Mapping):
            names.extend(items.keys())
        elif isinstance(items, list):
            for item in items:
                if isinstance(item, Mapping):
                    for field_key in ("field", "Field", "PropertyName", "Parameter", "Name"):
                        if field_key in item:
                            names.append(item[field_key])
                            break
    for key, value in body.items():
        if key in _ENVELOPE_KEYS:
            continue
        if isinstance(value, list | Mapping):
            names.append(key)
    return names


def field_problems(
    body: Any,
    rename: Callable[[str], str] | None = None,
    known: Collection[str] | None = None,
) -> list[FieldProblem]:
    return problems_for(field_names(body), rename, known)
