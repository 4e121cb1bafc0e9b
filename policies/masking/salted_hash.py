"""``hash``: salted SHA-256 of the value. Not pseudonymisation for guessable values (docs/gdpr.md):
the salt is per deployment, so prefer ``pseudonym`` where records must be joined."""

from __future__ import annotations

import hashlib
from typing import Any

from policies.masking.base import (
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
    salt = keys.hash_salt

    def salted_hash(value: Any, shape: str, path: str) -> Any:
        return "sha256:" + hashlib.sha256(salt + canonical(value)).hexdigest()

    return salted_hash


STRATEGY = Strategy(
    name="hash", disclosure=30, options_type=NoOptions, build=_build, needs="hash_salt"
)
