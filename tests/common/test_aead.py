"""AES-256-GCM with associated data: the cipher the masking and the audit log share."""

import os

import pytest

from common.aead import KeyDestroyed, Sealer, SealError, open_sealed, seal


def test_seal_round_trip() -> None:
    key = os.urandom(32)
    blob = seal(key, b"anna@example.org", b"entry-1|Email")
    assert b"anna@example.org" not in blob
    assert open_sealed(key, blob, b"entry-1|Email") == b"anna@example.org"


def test_ciphertext_moved_to_another_field_fails_to_open() -> None:
    key = os.urandom(32)
    blob = seal(key, b"anna@example.org", b"entry-1|Email")
    with pytest.raises(SealError):
        open_sealed(key, blob, b"entry-2|Email")


def test_wrong_key_fails_to_open() -> None:
    blob = seal(os.urandom(32), b"x", b"aad")
    with pytest.raises(SealError):
        open_sealed(os.urandom(32), blob, b"aad")


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        seal(b"short", b"x", b"aad")


def test_a_sealer_keeps_its_cipher_and_its_blobs_open_with_the_key() -> None:
    key = os.urandom(32)
    sealer = Sealer(key)
    blob = sealer.seal(b"anna@example.org", b"entry-1|Email")
    assert open_sealed(key, blob, b"entry-1|Email") == b"anna@example.org"
    assert sealer.open(seal(key, b"x", b"aad"), b"aad") == b"x"
    with pytest.raises(SealError):
        sealer.open(blob, b"entry-2|Email")
    with pytest.raises(SealError):
        Sealer(os.urandom(32)).open(blob, b"entry-1|Email")
    with pytest.raises(ValueError, match="32-byte"):
        Sealer(b"short")


def test_a_destroyed_sealer_refuses_at_once() -> None:
    sealer = Sealer(os.urandom(32))
    blob = sealer.seal(b"x", b"aad")
    sealer.destroy()
    assert sealer.destroyed and "destroyed" in repr(sealer)
    with pytest.raises(KeyDestroyed):
        sealer.seal(b"y", b"aad")
    with pytest.raises(KeyDestroyed):
        sealer.open(blob, b"aad")
