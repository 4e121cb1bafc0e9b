"""``aesgcm`` (alias ``encrypt``): the reversible strategy. The value is sealed with
AES-256-GCM (:mod:`common.aead`, the cipher the audit log uses too) under the engine's
encryption key; the associated data is ``system|path``, so a ciphertext only opens for
its own field."""

from __future__ import annotations

import base64
from typing import Any

from common import aead
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
    key = keys.encryption_key
    if key is None or len(key) != aead.KEY_BYTES:
        raise MaskingConfigError("strategy 'aesgcm' needs a 32-byte encryption key")
    return Encrypt(key, system)


class Encrypt(Masker):
    __slots__ = ("_key", "system")

    #: the associated data names the field's path
    uses_path = True

    def __init__(self, key: bytes, system: str) -> None:
        self._key = key
        self.system = system

    def __repr__(self) -> str:  # never the key
        return f"Encrypt(system={self.system!r})"

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        blob = aead.seal(self._key, canonical(value), f"{self.system}|{path}".encode())
        return "aesgcm:" + base64.urlsafe_b64encode(blob).decode()

    def bind(self, shape: str, path: str) -> Bound:
        key, associated = self._key, f"{self.system}|{path}".encode()

        def encrypt(value: Any) -> Any:
            blob = aead.seal(key, canonical(value), associated)
            return "aesgcm:" + base64.urlsafe_b64encode(blob).decode()

        return encrypt


STRATEGY = Strategy(
    name="aesgcm",
    disclosure=20,
    options_type=NoOptions,
    build=_build,
    needs="encryption_key",
)
