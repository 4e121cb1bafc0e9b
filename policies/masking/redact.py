"""``redact``: a fixed text in place of the value; the field stays, so its presence shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.masking.base import REDACTED, Bound, Masker, MaskingKeys, Strategy


@dataclass(frozen=True, slots=True)
class RedactOptions:
    text: str = REDACTED

    def __post_init__(self) -> None:
        if len(self.text) > 40:
            raise ValueError("text: at most 40 characters")


class Redact(Masker):
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        return self.text

    def bind(self, shape: str, path: str) -> Bound:
        text = self.text

        def redact(value: Any) -> Any:
            return text

        return redact


def _build(options: RedactOptions, keys: MaskingKeys, system: str) -> Masker:
    return Redact(options.text)


STRATEGY = Strategy(name="redact", disclosure=10, options_type=RedactOptions, build=_build)
