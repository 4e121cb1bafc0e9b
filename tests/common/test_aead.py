"""AES-256-GCM with associated data: the cipher the masking and the audit log share."""

import os

import pytest

from common.aead import SealError, open_sealed, seal


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
