"""``null``: the value becomes null, as if it were not set."""

from __future__ import annotations

from typing import Any

from policies.masking.base import Bound, Masker, MaskingKeys, NoOptions, Strategy


def _null(value: Any) -> Any:
    return None


class Null(Masker):
    __slots__ = ()

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        return None

    def bind(self, shape: str, path: str) -> Bound:
        return _null


def _build(options: NoOptions, keys: MaskingKeys, system: str) -> Masker:
    return Null()


STRATEGY = Strategy(name="null", disclosure=0, options_type=NoOptions, build=_build)
