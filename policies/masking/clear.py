"""``clear``: the value as it is."""

from __future__ import annotations

from typing import Any

from policies.masking.base import Masker, MaskingKeys, NoOptions, Strategy


def _build(options: NoOptions, keys: MaskingKeys, system: str) -> Masker:
    def clear(value: Any, shape: str, path: str) -> Any:
        return value

    return clear


STRATEGY = Strategy(name="clear", disclosure=100, options_type=NoOptions, build=_build)
