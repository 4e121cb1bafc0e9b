"""``pseudonym``: keyed HMAC-SHA256 of the value, stable so records can still be joined
(GDPR Art. 4(5)); the key is kept apart from the data."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from policies.masking.base import (
    Bound,
    Masker,
    MaskingConfigError,
    MaskingKeys,
    Strategy,
    canonical,
)


@dataclass(frozen=True, slots=True)
class PseudonymOptions:
    length: int = 32  # hex characters kept of the 64

    def __post_init__(self) -> None:
        if not 16 <= self.length <= 64:
            raise ValueError("length: between 16 and 64 hex characters")


def _build(options: PseudonymOptions, keys: MaskingKeys, system: str) -> Masker:
    if len(keys.pseudonym_key) < 16:
        raise MaskingConfigError("strategy 'pseudonym' needs a key of at least 16 bytes")
    return Pseudonym(keys.pseudonym_key, options.length)


class Pseudonym(Masker):
    __slots__ = ("_key", "length")

    def __init__(self, key: bytes, length: int) -> None:
        self._key = key
        self.length = length

    def __repr__(self) -> str:  # never the key
        return f"Pseudonym(length={self.length})"

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        digest = hmac.new(self._key, canonical(value), hashlib.sha256).hexdigest()
        return "pn:" + digest[: self.length]

    def bind(self, shape: str, path: str) -> Bound:
        key, length = self._key, self.length

        def pseudonym(value: Any) -> Any:
            return "pn:" + hmac.new(key, canonical(value), hashlib.sha256).hexdigest()[:length]

        return pseudonym


STRATEGY = Strategy(
    name="pseudonym",
    disclosure=40,
    options_type=PseudonymOptions,
    build=_build,
    needs="pseudonym_key",
)
