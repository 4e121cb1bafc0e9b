"""Signed checkpoints: when the writer signs the head, and the row it stores.

A checkpoint is due every ``every`` entries or ``seconds`` (also after that long idle,
and at close, when this process appended). The signature is Ed25519 over
``"gdpr-gateway-audit-checkpoint/v1\\n{seq}\\n{hash}\\n{time}"`` (:mod:`audit.crypto`).
"""

from __future__ import annotations

import time
from typing import Any

from audit import crypto
from audit.entries import parse_iso


class Checkpoints:
    def __init__(self, signing_key: bytes, *, every: int, seconds: float) -> None:
        self._signing_key = signing_key
        self._public_hex = crypto.public_key_of(signing_key).hex()
        self.every = every
        self.seconds = seconds
        self._opened_at = time.time()
        # the last checkpoint time read, and its timestamp: parsed once, not per batch
        self._last: tuple[str | None, float] = (None, 0.0)

    def due(self, seq: int, cp_seq: int, cp_at: str | None) -> bool:
        """Is a checkpoint due at ``seq``, the last one being at ``cp_seq``, ``cp_at``?"""
        if seq <= cp_seq:
            return False
        if not cp_at:
            last = self._opened_at
        elif self._last[0] == cp_at:
            last = self._last[1]
        else:
            last = parse_iso(cp_at).timestamp()
            self._last = (cp_at, last)
        return seq - cp_seq >= self.every or time.time() - last >= self.seconds

    def row(self, seq: int, head_hash: str, now: str) -> tuple[Any, ...]:
        """The ``audit_checkpoint`` row signing ``(seq, head_hash)`` at ``now``."""
        signature = crypto.sign_checkpoint(self._signing_key, seq, head_hash, now)
        return (seq, head_hash, now, self._public_hex, signature.hex())
