"""JSON merge patch (RFC 7396) and the strict equality that decides what really changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_PLAIN = frozenset({str, int, float, bool, list})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 MergePatch: null removes a member, objects merge recursively, anything else
    (arrays included) replaces. Returns a new object; unpatched values are shared."""
    if type(patch) is not dict and not isinstance(patch, Mapping):
        return patch
    result: dict[str, Any] = (
        dict(target) if type(target) is dict or isinstance(target, Mapping) else {}
    )
    for key, value in patch.items():
        kind = type(value)
        if kind in _PLAIN:
            result[key] = value
        elif value is None:
            result.pop(key, None)
        elif kind is dict or isinstance(value, Mapping):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = value
    return result


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, where ``true`` is not ``1`` (Python's ``==`` says it is);
    ``1`` and ``1.0`` are the same number."""
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is not tb:
        if ta in (int, float) and tb in (int, float):
            return bool(a == b)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return _same_mapping(a, b)
        return False
    if ta is dict:
        return _same_mapping(a, b)
    if ta is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _same_mapping(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(same(a[k], b[k]) for k in a)
