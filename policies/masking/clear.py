"""``clear``: the value as it is."""

from __future__ import annotations

from typing import Any

from policies.masking.base import Bound, Masker, MaskingKeys, NoOptions, Strategy


def _clear(value: Any) -> Any:
    return value


class Clear(Masker):
    __slots__ = ()

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        return value

    def bind(self, shape: str, path: str) -> Bound:
        return _clear


def _build(options: NoOptions, keys: MaskingKeys, system: str) -> Masker:
    return Clear()


STRATEGY = Strategy(name="clear", disclosure=100, options_type=NoOptions, build=_build)
