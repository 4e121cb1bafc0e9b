"""Keys of the audit log: per-subject data keys wrapped by a master key, value sealing,
and the Ed25519 signature of checkpoints.

Every ciphertext is bound by its associated data to the place it belongs: a data key to
its key id and subject, sealed values to their entry id, side (before/after) and field
paths. A ciphertext moved anywhere else does not open.

Body format 2 (written since) seals the personal values of one side of an entry together,
one ciphertext per side (:func:`encode_side`, :func:`seal_side`, :func:`open_side`);
format 1 sealed each value on its own (:func:`seal_value`, :func:`open_value`), and its
entries are read as they always were.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from functools import lru_cache
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import InvalidAuditInput
from common.aead import KeyDestroyed, Sealer, SealError, open_sealed, seal
from common.canonical import encoder

KEY_BYTES: Final = 32
_KEK_CONTEXT: Final = b"gdpr-gateway-audit-kek/v1"
_WRAP_CONTEXT: Final = "gdpr-gateway-audit-subject-key/v1"
_json_str: Final = json.encoder.encode_basestring_ascii  # what json.dumps writes of a str
_WRAP_CONTEXT_JSON: Final = _json_str(_WRAP_CONTEXT)
_VALUE_CONTEXT: Final = "gdpr-gateway-audit-value/v1"
_SIDE_CONTEXT: Final = "gdpr-gateway-audit-values/v2"
_CHECKPOINT_CONTEXT: Final = "gdpr-gateway-audit-checkpoint/v1"

__all__ = [
    "KEY_BYTES",
    "KeyDestroyed",
    "SealError",
    "Sealer",
    "check_key",
    "checkpoint_message",
    "encode_side",
    "encode_value",
    "kek_id",
    "new_data_key",
    "open_side",
    "open_value",
    "public_key_of",
    "seal_plain",
    "seal_side",
    "seal_value",
    "sign_checkpoint",
    "unwrap_key",
    "verify_checkpoint",
    "wrap_key",
]


def check_key(key: bytes, what: str) -> bytes:
    """Return ``key`` if it is 32 bytes, else raise a clear error naming ``what``."""
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise InvalidAuditInput(f"the {what} must be exactly {KEY_BYTES} bytes")
    return bytes(key)


def kek_id(master_key: bytes) -> str:
    """A short public fingerprint of the master key, stored beside each wrapped key."""
    return hashlib.sha256(_KEK_CONTEXT + master_key).hexdigest()[:16]


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _wrap_aad(key_id: str, system: str, customer_id: str) -> bytes:
    # the text ``json.dumps`` writes of the list of the four strings (the bytes are
    # fixed: every stored key is bound to them), from the same C string encoder without
    # json's dispatch - about a third of the cost of wrapping a new key (issue 11)
    if type(key_id) is str and type(system) is str and type(customer_id) is str:
        return (
            f"[{_WRAP_CONTEXT_JSON}, {_json_str(key_id)}, {_json_str(system)},"
            f" {_json_str(customer_id)}]"
        ).encode()
    return json.dumps([_WRAP_CONTEXT, key_id, system, customer_id]).encode()


def _master(master_key: bytes | Sealer) -> Sealer:
    return master_key if isinstance(master_key, Sealer) else Sealer(master_key)


def wrap_key(
    master_key: bytes | Sealer, data_key: bytes, key_id: str, system: str, cid: str
) -> bytes:
    """Wrap a data key under the master key (its bytes, or a :class:`Sealer` of them
    built once by a caller that wraps many)."""
    return _master(master_key).seal(data_key, _wrap_aad(key_id, system, cid))


def unwrap_key(
    master_key: bytes | Sealer, wrapped: bytes, key_id: str, system: str, cid: str
) -> bytes:
    """Raises :class:`SealError` when the master key or the binding is wrong."""
    return _master(master_key).open(wrapped, _wrap_aad(key_id, system, cid))


# the plaintext of a sealed value: ASCII, NaN written as ``NaN`` (unchanged since v1)
_encode_value = encoder(ascii_only=True, allow_nan=True)


def _value_aad(audit_id: str, side: str, path: str) -> bytes:
    # length-prefixed, so no two (entry, side, path) triples give the same bytes
    return (
        f"{_VALUE_CONTEXT}|{len(audit_id)}:{audit_id}|{len(side)}:{side}|{len(path)}:{path}"
    ).encode()


def encode_value(value: Any, path: str) -> bytes:
    """The plaintext of a value: its JSON. Raises a clear error for a non-JSON value."""
    try:
        return _encode_value(value).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidAuditInput(f"value of field {path!r} is not JSON-serialisable") from exc


def seal_plain(data_key: bytes, plain: bytes, audit_id: str, side: str, path: str) -> str:
    """Seal an encoded value; returns base64 text (what the entry body stores)."""
    return base64.b64encode(seal(data_key, plain, _value_aad(audit_id, side, path))).decode()


def seal_value(data_key: bytes, value: Any, audit_id: str, side: str, path: str) -> str:
    """Seal one JSON value; returns base64 text (what the entry body stores)."""
    return seal_plain(data_key, encode_value(value, path), audit_id, side, path)


def open_value(data_key: bytes, sealed: str, audit_id: str, side: str, path: str) -> Any:
    """Open what :func:`seal_value` produced for the same entry, side and path."""
    blob = base64.b64decode(sealed)
    return json.loads(open_sealed(data_key, blob, _value_aad(audit_id, side, path)))


_SIDE_PREFIX: Final = f"{len(_SIDE_CONTEXT)}:{_SIDE_CONTEXT}"


@lru_cache(maxsize=1024)
def _paths_aad(paths: tuple[str, ...]) -> str:
    return "".join(f"|{len(path)}:{path}" for path in paths)


def _side_aad(audit_id: str, side: str, paths: tuple[str, ...]) -> bytes:
    # every part length-prefixed: no two (entry, side, paths) give the same bytes
    return (
        f"{_SIDE_PREFIX}|{len(audit_id)}:{audit_id}|{len(side)}:{side}{_paths_aad(paths)}"
    ).encode()


def encode_side(values: dict[str, Any]) -> bytes:
    """The plaintext of one side's sealed values: the JSON object ``{path: value}`` (the
    canonical form of a sealed value, with its keys sorted). Raises a clear error naming
    the first field whose value is not JSON."""
    try:
        return _encode_value(values).encode()
    except (TypeError, ValueError):
        for path in sorted(values):
            encode_value(values[path], path)
        raise InvalidAuditInput("a sealed value is not JSON-serialisable") from None


def seal_side(
    sealer: Sealer, plain: bytes, audit_id: str, side: str, paths: tuple[str, ...]
) -> str:
    """Seal what :func:`encode_side` made of the values at ``paths`` (sorted) on ``side``
    of entry ``audit_id``; returns base64 text (what the entry body stores)."""
    blob = sealer.seal(plain, _side_aad(audit_id, side, paths))
    return binascii.b2a_base64(blob, newline=False).decode("ascii")


def open_side(
    sealer: Sealer, box: str, audit_id: str, side: str, paths: list[str]
) -> dict[str, Any]:
    """Open what :func:`seal_side` produced for the same entry, side and paths: the values
    by path. Raises :class:`SealError` when it does not open or does not hold them."""
    plain = sealer.open(base64.b64decode(box), _side_aad(audit_id, side, tuple(paths)))
    values = json.loads(plain)
    if not isinstance(values, dict) or sorted(values) != sorted(paths):
        raise SealError("the sealed values do not match their paths")
    return values


def checkpoint_message(seq: int, head_hash: str, time: str) -> bytes:
    return f"{_CHECKPOINT_CONTEXT}\n{seq}\n{head_hash}\n{time}".encode()


def _private(signing_key: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(check_key(signing_key, "signing key"))


def public_key_of(signing_key: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key of a 32-byte private seed."""
    return _private(signing_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_checkpoint(signing_key: bytes, seq: int, head_hash: str, time: str) -> bytes:
    return _private(signing_key).sign(checkpoint_message(seq, head_hash, time))


def verify_checkpoint(
    public_key: bytes, signature: bytes, seq: int, head_hash: str, time: str
) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, checkpoint_message(seq, head_hash, time)
        )
    except (InvalidSignature, ValueError):
        return False
    return True
