"""Helpers for tests that look inside JSON values."""

from __future__ import annotations

from typing import Any


def leaves(value: Any) -> list[Any]:
    """The scalars of a JSON value (objects' member values and arrays' items), in order."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]
