"""AES-256-GCM sealing with associated data: the one cipher of the gateway.

The policy masking's reversible strategy (``aesgcm``) seals a shown value under the
engine's encryption key; the audit log seals personal values under a per-subject data key
and wraps those keys under the master key. The associated data binds a ciphertext to the
place it belongs (a field, an entry), so a ciphertext moved elsewhere fails to open.
A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the nonce is random
(a stream of :mod:`common.entropy`).

:func:`seal` and :func:`open_sealed` take the key each time. A :class:`Sealer` keeps the
cipher object of one key (building it is about half the cost of sealing a short value),
for a key used again and again - the audit log's cached subject keys; its
:meth:`Sealer.destroy` makes it refuse any further use at once.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.entropy import byte_stream

NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32
_TAG_BYTES: Final = 16
_nonce = byte_stream(NONCE_BYTES)


class SealError(ValueError):
    """A ciphertext did not open: wrong key, wrong associated data, or altered bytes."""


class KeyDestroyed(SealError):
    """The :class:`Sealer` was destroyed: its key must not seal or open anything again."""


def _check(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext``; returns nonce || ciphertext || tag."""
    _check(key)
    nonce = _nonce()
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`seal` produced under the same key and associated data."""
    _check(key)
    return _open(AESGCM(key), blob, aad)


def _open(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + _TAG_BYTES:
        raise SealError("ciphertext too short")
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SealError("ciphertext does not open under this key and context") from exc


class Sealer:
    """:func:`seal` and :func:`open_sealed` under one key, with its cipher object built
    once. Blobs are interchangeable with theirs. After :meth:`destroy` every call raises
    :class:`KeyDestroyed` (Python cannot wipe the key's bytes from memory; the object
    only drops its cipher and refuses to work, so no holder can use it by mistake)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        _check(key)
        self._aead: AESGCM | None = AESGCM(key)

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise KeyDestroyed("this key was destroyed")
        return self._aead

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        aead = self._aead  # what _cipher() does, inline: this is every entry's seal
        if aead is None:
            raise KeyDestroyed("this key was destroyed")
        nonce = _nonce()
        return nonce + aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        return _open(self._cipher(), blob, aad)

    def destroy(self) -> None:
        self._aead = None

    @property
    def destroyed(self) -> bool:
        return self._aead is None

    def __repr__(self) -> str:  # never the key
        return f"Sealer({'destroyed' if self._aead is None else 'live'})"
