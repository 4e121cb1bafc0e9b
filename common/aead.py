"""AES-256-GCM sealing with associated data: the one cipher of the gateway.

The policy masking's reversible strategy (``aesgcm``) seals a shown value under the
engine's encryption key; the audit log seals personal values under a per-subject data key
and wraps those keys under the master key. The associated data binds a ciphertext to the
place it belongs (a field, an entry), so a ciphertext moved elsewhere fails to open.
A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32


class SealError(ValueError):
    """A ciphertext did not open: wrong key, wrong associated data, or altered bytes."""


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext``; returns nonce || ciphertext || tag."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`seal` produced under the same key and associated data."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    if len(blob) < NONCE_BYTES + 16:
        raise SealError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SealError("ciphertext does not open under this key and context") from exc
