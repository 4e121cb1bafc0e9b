"""The small checker every part of the policy schema reports through: each error is a
(key path, message) pair; the loader adds the file and the line of the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.taxonomy import is_category, nearest_categories
from policies.yamlmarks import Key


class Checker:
    """Collects (key path, message) pairs."""

    def __init__(self) -> None:
        self.errors: list[tuple[Key, str]] = []

    def err(self, key: Key, message: str) -> None:
        self.errors.append((key, message))

    def keys(self, key: Key, value: Mapping[str, Any], allowed: set[str]) -> None:
        for name in value:
            if name not in allowed:
                self.err((*key, name), f"unknown key (valid: {', '.join(sorted(allowed))})")

    def mapping(self, key: Key, value: Any) -> bool:
        if not isinstance(value, dict):
            self.err(key, f"expected a mapping, got {show(value)}")
            return False
        return True

    def string(self, key: Key, value: Any) -> bool:
        if not isinstance(value, str) or not value:
            self.err(key, f"expected a non-empty string, got {show(value)}")
            return False
        return True

    def boolean(self, key: Key, value: Any) -> bool:
        if not isinstance(value, bool):
            self.err(key, f"expected true or false, got {show(value)}")
            return False
        return True

    def count(self, key: Key, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.err(key, f"expected an integer, got {show(value)}")
            return False
        return True

    def choice(self, key: Key, value: Any, valid: tuple[str, ...] | list[str], what: str) -> bool:
        if not isinstance(value, str) or value not in valid:
            self.err(key, f"unknown {what} {show(value)} (valid: {', '.join(valid)})")
            return False
        return True

    def choices(self, key: Key, value: Any, valid: tuple[str, ...], what: str) -> bool:
        if not isinstance(value, list):
            self.err(key, f"expected a list of {what}s, got {show(value)}")
            return False
        return all([self.choice((*key, i), v, valid, what) for i, v in enumerate(value)])

    def category(self, key: Key, value: Any) -> bool:
        """A data category of the fideslang taxonomy (the nearest ones named if not)."""
        if not self.string(key, value):
            return False
        if not is_category(value):
            near = nearest_categories(value)
            hint = f"; nearest: {', '.join(near)}" if near else ""
            self.err(key, f"unknown data category {value!r} in the fideslang taxonomy{hint}")
            return False
        return True


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
