"""The subject data keys of one process: a cache, and their lookup or creation inside the
append transaction.

A subject has one key per slot (:data:`audit.batch.Slot`: the end of the retention period
of the values it seals, or none): created on the slot's first sealed value, wrapped under
the master key and inserted in the same transaction as the entry. The cache holds each
key as a :class:`~common.aead.Sealer` (its cipher built once) and lets callers seal in
their own task. When an erasure destroys a subject's keys - this process's, as its
transaction commits, or another process's, seen under the append lock before the next
batch is chained - the cache forgets every slot of the subject and destroys their
Sealers, so that they cannot seal or open anything again. Slots not used for two periods
are dropped from the cache (looked up again if ever needed). An expiry
(:mod:`audit.retention`) needs no forgetting: a slot whose period has ended is never
chosen to seal again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

from audit import crypto
from audit.backend import ChainTx
from audit.batch import DataKey, Pending, Slot, Subject, is_current
from audit.entries import now_iso
from audit.errors import AuditUnavailable, KeyMismatch
from audit.ids import uuid7

KeyRow = tuple[Any, ...]
_STORED = (
    "SELECT key_id, wrapped FROM audit_subject_key"
    " WHERE system = ? AND customer_id = ? AND erased_at IS NULL"
)
_STORED_IN_SLOT: Final = _STORED + " AND expires_at = ?"
_STORED_WITHOUT_SLOT: Final = _STORED + " AND expires_at IS NULL"
#: how often the cache drops the keys of slots it did not use meanwhile (one week)
PRUNE_SECONDS: Final = 7 * 86400.0


#: a live key wrapped by another master key: written as two ranges so that both SQLite
#: and PostgreSQL look it up in ``ix_audit_subject_key_kek`` (``<>`` scans the table,
#: and this runs before every batch that makes a key - it cost a scan of every
#: subject's key per new subject)
OTHER_KEK_SQL: Final = (
    "SELECT key_id FROM audit_subject_key WHERE (kek_id < ? OR kek_id > ?)"
    " AND wrapped IS NOT NULL LIMIT 1"
)

class KeyRing:
    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key
        self._kek_id = crypto.kek_id(master_key)
        self._keys: dict[Slot, DataKey] = {}
        self._slots: dict[Subject, set[Slot]] = {}
        self._used: set[Slot] = set()  # since the last pruning
        self._pruned = time.monotonic()

    @property
    def cached(self) -> dict[Slot, DataKey]:
        """The keys known to this process (read only by its callers)."""
        return self._keys

    def learn(self, keys: dict[Slot, DataKey]) -> None:
        self._keys.update(keys)
        for slot in keys:
            self._slots.setdefault((slot[0], slot[1]), set()).add(slot)

    def forget(self, subjects: Iterable[Subject]) -> None:
        """Drop every key of the subjects and destroy them (an erasure)."""
        for subject in subjects:
            for slot in self._slots.pop(subject, ()):
                known = self._keys.pop(slot, None)
                if known is not None:
                    known[1].destroy()

    def touch(self, batch: list[Pending]) -> None:
        """A batch is written with the cached keys of its slots (on either path): they
        are in use. Every :data:`PRUNE_SECONDS` the cache drops the slots used neither
        since the last pruning nor by this batch (dropped, not destroyed: a caller may be
        sealing with one right now; a slot's key seals values of one retention period,
        then never again, and is looked up again if ever needed)."""
        slots = {item.slot for item in batch if item.to_seal}
        if time.monotonic() - self._pruned >= PRUNE_SECONDS:
            keep = self._used | slots
            for slot in [s for s in self._keys if s not in keep]:
                self._keys.pop(slot, None)
                self._slots.get((slot[0], slot[1]), set()).discard(slot)
            self._used.clear()
            self._pruned = time.monotonic()
        self._used |= slots

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
    ) -> tuple[dict[Slot, DataKey], dict[Slot, DataKey], list[KeyRow]]:
        """(the keys the batch must seal with, those of them new to this process, the
        rows of the keys created for it). Entries their caller sealed already need none."""
        self.touch(batch)
        keys: dict[Slot, DataKey] = {}
        new_keys: dict[Slot, DataKey] = {}
        key_rows: list[KeyRow] = []
        for item in batch:
            slot = item.slot
            if not item.to_seal or slot in keys or is_current(item, self._keys.get(slot)):
                continue
            cached = self._keys.get(slot)
            if cached is not None:
                keys[slot] = cached
                continue
            found = await self._stored(tx, slot)
            if found is None:
                if not key_rows:
                    await self._check_not_rotated(tx)
                key_id, data_key = uuid7(), crypto.new_data_key()
                key_rows.append(self._row(slot, key_id, data_key))
                found = key_id, crypto.Sealer(data_key)
            keys[slot] = new_keys[slot] = found
        return keys, new_keys, key_rows

    async def _stored(self, tx: ChainTx, slot: Slot) -> DataKey | None:
        system, cid, expires = slot
        # the subject's live key of this slot (a key made before slots has none)
        found = await tx.fetchall(
            _STORED_IN_SLOT if expires is not None else _STORED_WITHOUT_SLOT,
            [system, cid] if expires is None else [system, cid, expires],
        )
        if not found or found[0][1] is None:
            return None
        key_id = found[0][0]
        try:
            data_key = crypto.unwrap_key(self._master_key, bytes(found[0][1]), key_id, system, cid)
        except crypto.SealError as exc:
            raise KeyMismatch("a subject key does not open under the master key") from exc
        return key_id, crypto.Sealer(data_key)

    def _row(self, slot: Slot, key_id: str, data_key: bytes) -> KeyRow:
        system, cid, expires = slot
        wrapped = crypto.wrap_key(self._master_key, data_key, key_id, system, cid)
        return key_id, system, cid, wrapped, self._kek_id, now_iso(), expires

    async def _check_not_rotated(self, tx: ChainTx) -> None:
        """Before wrapping a new key: refuse if the store's keys were re-wrapped under
        another master key since this process started (it would mix master keys)."""
        other = await tx.fetchall(OTHER_KEK_SQL, [self._kek_id, self._kek_id])
        if other:
            raise AuditUnavailable(
                "the master key was rotated: restart this process with the current key"
            )
