"""Idempotency keys of writes, kept beside the audit log (docs/clients.md, "Safe retries").

One row per (principal, ``Idempotency-Key``) in ``idempotency_key`` (migration 0004),
shared by every replica on one database. A request *claims* its key before anything is
forwarded: the row is inserted (or, when the row is a claim of a process that died, its
claim is taken over) in one transaction; whoever owns the row afterwards runs the
request, everyone else waits for its answer. Once the answer is final it is stored
(:meth:`IdempotencyStore.complete`), sealed, and a retry gets it again for the retention
window; a claim whose answer is not final is released (:meth:`release`) so a retry runs
anew.

What is stored is never the client's key nor the principal's name in clear: ``key_hash``
is an HMAC of both under a key derived from the master key. The answer (which holds the
record masked for the caller) is sealed with AES-256-GCM under another derived key,
bound to its row; the data subject's erasure deletes their rows in the transaction that
destroys their keys (:func:`erase_statement`), and a row expires after the window
(:meth:`expire`). A master-key rotation makes every stored row unreadable: such a row
is treated as expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from audit.backend import Backend, Statement
from common.aead import Sealer, SealError

_KEY_CONTEXT: Final = b"gdpr-gateway-idempotency-key/v1"
_ANSWER_CONTEXT: Final = b"gdpr-gateway-idempotency-answer/v1"

_DELETE_EXPIRED_ONE = "DELETE FROM idempotency_key WHERE key_hash = ? AND expires_at < ?"
_TAKE_OVER = (
    "UPDATE idempotency_key SET owner = ?, claimed_until = ?"
    " WHERE key_hash = ? AND fingerprint = ? AND status IS NULL AND claimed_until < ?"
)
_INSERT = (
    "INSERT INTO idempotency_key (key_hash, fingerprint, owner, system, customer_id,"
    " created_at, claimed_until, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (key_hash) DO NOTHING"
)
_ROW = "SELECT fingerprint, owner, status, answer FROM idempotency_key WHERE key_hash = ?"
_COMPLETE = (
    "UPDATE idempotency_key SET status = ?, answer = ?, expires_at = ?"
    " WHERE key_hash = ? AND owner = ? AND status IS NULL"
)
_RELEASE = "DELETE FROM idempotency_key WHERE key_hash = ? AND owner = ? AND status IS NULL"
_DELETE_ONE = "DELETE FROM idempotency_key WHERE key_hash = ? AND fingerprint = ?"
_COUNT_EXPIRED = "SELECT count(*) FROM idempotency_key WHERE expires_at < ?"
_DELETE_EXPIRED = "DELETE FROM idempotency_key WHERE expires_at < ?"
#: the stored answers of a subject (a claim in flight, such as the erasure's own, stays)
_ERASE = (
    "DELETE FROM idempotency_key WHERE system = ? AND customer_id = ? AND status IS NOT NULL"
)


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # this request owns the key: run it
    REPLAY = "replay"  # the first answer is final: answer it again
    IN_PROGRESS = "in_progress"  # another request owns the key and runs now
    MISMATCH = "mismatch"  # the key was used for another request


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer: status, the headers worth replaying, the body's bytes."""

    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)
    content_type: str = "application/json"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    owner: str
    answer: StoredAnswer | None = None


def erase_statement(system: str, customer_id: str) -> Statement:
    """The statement an erasure runs in its transaction: the subject's stored answers go."""
    return _ERASE, [(system, customer_id)]


class IdempotencyStore:
    """The idempotency keys of one audit store."""

    def __init__(self, backend: Backend, master_key: bytes) -> None:
        self._backend = backend
        self._hash_key = hmac.new(master_key, _KEY_CONTEXT, hashlib.sha256).digest()
        self._sealer = Sealer(hmac.new(master_key, _ANSWER_CONTEXT, hashlib.sha256).digest())

    def key_hash(self, principal: str, key: str) -> str:
        """The row's id: an HMAC of the principal and the client's key (never stored)."""
        message = principal.encode() + b"\x00" + key.encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()

    async def claim(
        self,
        key_hash: str,
        fingerprint: str,
        subject: tuple[str, str],
        *,
        claim_seconds: float,
        retention_seconds: float,
        owner: str | None = None,
    ) -> Claim:
        """Claim ``key_hash`` for a request with ``fingerprint`` (or learn who has it)."""
        owner = owner or uuid.uuid4().hex
        now = time.time()
        until = now + claim_seconds
        row = (key_hash, fingerprint, owner, *subject, now, until, now + retention_seconds)
        statements: list[Statement] = [
            (_DELETE_EXPIRED_ONE, [(key_hash, now)]),
            (_TAKE_OVER, [(owner, until, key_hash, fingerprint, now)]),
            (_INSERT, [row]),
        ]
        await self._backend.run(statements)
        rows = await self._backend.fetchall(_ROW, [key_hash])
        if not rows:  # erased or expired between the two: nobody holds it now
            return Claim(ClaimState.IN_PROGRESS, owner)
        stored_fingerprint, stored_owner, status, answer = rows[0]
        if stored_fingerprint != fingerprint:
            return Claim(ClaimState.MISMATCH, owner)
        if status is not None:
            opened = self._open(key_hash, answer)
            if opened is None:  # unreadable (a rotated master key): as if expired
                await self._backend.run([(_DELETE_ONE, [(key_hash, fingerprint)])])
                return Claim(ClaimState.IN_PROGRESS, owner)
            return Claim(ClaimState.REPLAY, owner, opened)
        if stored_owner == owner:
            return Claim(ClaimState.CLAIMED, owner)
        return Claim(ClaimState.IN_PROGRESS, owner)

    async def complete(
        self, key_hash: str, owner: str, answer: StoredAnswer, *, retention_seconds: float
    ) -> None:
        """Store the final answer of the claim ``owner`` holds."""
        plain = json.dumps(
            {
                "status": answer.status,
                "headers": answer.headers,
                "content_type": answer.content_type,
                "body": base64.b64encode(answer.body).decode(),
            }
        ).encode()
        sealed = base64.b64encode(self._sealer.seal(plain, key_hash.encode())).decode()
        expires = time.time() + retention_seconds
        await self._backend.run(
            [(_COMPLETE, [(answer.status, sealed, expires, key_hash, owner)])]
        )

    async def release(self, key_hash: str, owner: str) -> None:
        """Give up a claim whose answer is not final: a retry runs anew."""
        await self._backend.run([(_RELEASE, [(key_hash, owner)])])

    async def expire(self, *, now: float | None = None) -> int:
        """Delete every row whose retention window ended; how many were deleted."""
        moment = time.time() if now is None else now
        rows = await self._backend.fetchall(_COUNT_EXPIRED, [moment])
        count = int(rows[0][0]) if rows else 0
        if count:
            await self._backend.run([(_DELETE_EXPIRED, [(moment,)])])
        return count

    def _open(self, key_hash: str, answer: Any) -> StoredAnswer | None:
        try:
            plain = self._sealer.open(base64.b64decode(answer), key_hash.encode())
            data = json.loads(plain)
            return StoredAnswer(
                status=int(data["status"]),
                headers={str(k): str(v) for k, v in data["headers"].items()},
                body=base64.b64decode(data["body"]),
                content_type=str(data["content_type"]),
            )
        except (SealError, binascii.Error, ValueError, KeyError, TypeError):
            return None
