"""``hash``: salted SHA-256 of the value. Not pseudonymisation for guessable values (docs/gdpr.md):
the salt is per deployment, so prefer ``pseudonym`` where records must be joined."""

from __future__ import annotations

import hashlib
from typing import Any

from policies.masking.base import (
    Bound,
    Masker,
    MaskingConfigError,
    MaskingKeys,
    NoOptions,
    Strategy,
    canonical,
)


def _build(options: NoOptions, keys: MaskingKeys, system: str) -> Masker:
    if not keys.hash_salt:
        raise MaskingConfigError("strategy 'hash' needs a hash salt")
    return SaltedHash(keys.hash_salt)


class SaltedHash(Masker):
    __slots__ = ("_salt",)

    def __init__(self, salt: bytes) -> None:
        self._salt = salt

    def __repr__(self) -> str:  # never the salt
        return "SaltedHash()"

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        return "sha256:" + hashlib.sha256(self._salt + canonical(value)).hexdigest()

    def bind(self, shape: str, path: str) -> Bound:
        salt = self._salt

        def salted_hash(value: Any) -> Any:
            return "sha256:" + hashlib.sha256(salt + canonical(value)).hexdigest()

        return salted_hash


STRATEGY = Strategy(
    name="hash", disclosure=30, options_type=NoOptions, build=_build, needs="hash_salt"
)
