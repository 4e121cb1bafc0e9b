"""``null``: the value becomes null, as if it were not set."""

from __future__ import annotations

from typing import Any

from policies.masking.base import Masker, MaskingKeys, NoOptions, Strategy


def _build(options: NoOptions, keys: MaskingKeys, system: str) -> Masker:
    def null(value: Any, shape: str, path: str) -> Any:
        return None

    return null


STRATEGY = Strategy(name="null", disclosure=0, options_type=NoOptions, build=_build)
