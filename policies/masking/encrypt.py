"""``aesgcm`` (alias ``encrypt``): the reversible strategy. The value is sealed with
AES-256-GCM (:mod:`common.aead`, the cipher the audit log uses too) under the engine's
encryption key; the associated data is ``system|path``, so a ciphertext only opens for
its own field."""

from __future__ import annotations

import base64
from typing import Any

from common import aead
from policies.masking.base import (
    Masker,
    MaskingConfigError,
    MaskingKeys,
    NoOptions,
    Strategy,
    canonical,
)


def _build(options: NoOptions, keys: MaskingKeys, system: str) -> Masker:
    key = keys.encryption_key
    if key is None or len(key) != aead.KEY_BYTES:
        raise MaskingConfigError("strategy 'aesgcm' needs a 32-byte encryption key")

    def encrypt(value: Any, shape: str, path: str) -> Any:
        blob = aead.seal(key, canonical(value), f"{system}|{path}".encode())
        return "aesgcm:" + base64.urlsafe_b64encode(blob).decode()

    return encrypt


STRATEGY = Strategy(
    name="aesgcm",
    disclosure=20,
    options_type=NoOptions,
    build=_build,
    needs="encryption_key",
)
