"""The subject data keys of one process: a cache, and their lookup or creation inside the
append transaction.

A subject's key is created on its first sealed value, wrapped under the master key and
inserted in the same transaction as the entry. The cache holds each key as a
:class:`~common.aead.Sealer` (its cipher built once) and lets callers seal in their own
task. When an erasure destroys a subject's key - this process's, as its transaction
commits, or another process's, seen under the append lock before the next batch is
chained - the cache forgets the subject and destroys its Sealer, so that it cannot seal
or open anything again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audit import crypto
from audit.backend import ChainTx
from audit.batch import DataKey, Pending, Subject, is_current
from audit.entries import now_iso
from audit.errors import AuditUnavailable, KeyMismatch
from audit.ids import uuid7

KeyRow = tuple[Any, ...]


class KeyRing:
    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key
        self._kek_id = crypto.kek_id(master_key)
        self._keys: dict[Subject, DataKey] = {}

    @property
    def cached(self) -> dict[Subject, DataKey]:
        """The keys known to this process (read only by its callers)."""
        return self._keys

    def learn(self, keys: dict[Subject, DataKey]) -> None:
        self._keys.update(keys)

    def forget(self, subjects: Iterable[Subject]) -> None:
        """Drop the subjects' keys and destroy them (an erasure)."""
        for subject in subjects:
            known = self._keys.pop(subject, None)
            if known is not None:
                known[1].destroy()

    async def forget_erased_since(self, tx: ChainTx, seq: int) -> None:
        """Other processes appended after ``seq``: forget the subjects they erased."""
        self.forget(
            (system, cid)
            for system, cid in await tx.fetchall(
                "SELECT system, customer_id FROM audit_entry WHERE seq > ? AND action = 'erase'",
                [seq],
            )
        )

    async def for_batch(
        self, tx: ChainTx, batch: list[Pending]
    ) -> tuple[dict[Subject, DataKey], dict[Subject, DataKey], list[KeyRow]]:
        """(the keys the batch must seal with, those of them new to this process, the
        rows of the keys created for it). Entries their caller sealed already need none."""
        keys: dict[Subject, DataKey] = {}
        new_keys: dict[Subject, DataKey] = {}
        key_rows: list[KeyRow] = []
        for item in batch:
            subject = item.subject
            if not item.to_seal or subject in keys or is_current(item, self._keys.get(subject)):
                continue
            cached = self._keys.get(subject)
            if cached is not None:
                keys[subject] = cached
                continue
            found = await self._stored(tx, subject)
            if found is None:
                if not key_rows:
                    await self._check_not_rotated(tx)
                key_id, data_key = uuid7(), crypto.new_data_key()
                key_rows.append(self._row(subject, key_id, data_key))
                found = key_id, crypto.Sealer(data_key)
            keys[subject] = new_keys[subject] = found
        return keys, new_keys, key_rows

    async def _stored(self, tx: ChainTx, subject: Subject) -> DataKey | None:
        system, cid = subject
        found = await tx.fetchall(
            "SELECT key_id, wrapped FROM audit_subject_key"
            " WHERE system = ? AND customer_id = ? AND erased_at IS NULL",
            [system, cid],
        )
        if not found or found[0][1] is None:
            return None
        key_id = found[0][0]
        try:
            data_key = crypto.unwrap_key(self._master_key, bytes(found[0][1]), key_id, system, cid)
        except crypto.SealError as exc:
            raise KeyMismatch("a subject key does not open under the master key") from exc
        return key_id, crypto.Sealer(data_key)

    def _row(self, subject: Subject, key_id: str, data_key: bytes) -> KeyRow:
        system, cid = subject
        wrapped = crypto.wrap_key(self._master_key, data_key, key_id, system, cid)
        return key_id, system, cid, wrapped, self._kek_id, now_iso()

    async def _check_not_rotated(self, tx: ChainTx) -> None:
        """Before wrapping a new key: refuse if the store's keys were re-wrapped under
        another master key since this process started (it would mix master keys)."""
        other = await tx.fetchall(
            "SELECT key_id FROM audit_subject_key WHERE wrapped IS NOT NULL AND kek_id <> ?"
            " LIMIT 1",
            [self._kek_id],
        )
        if other:
            raise AuditUnavailable(
                "the master key was rotated: restart this process with the current key"
            )
