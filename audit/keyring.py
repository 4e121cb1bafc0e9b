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
are dropped from the cache (looked up again if ever needed), and so are the least
recently used beyond :data:`MAX_CACHED_KEYS` (a Sealer holds a cipher context: about
2.9 KB of memory each, docs/audit.md). An expiry
(:mod:`audit.retention`) needs no forgetting: a slot whose period has ended is never
chosen to seal again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Generator, Iterable
from typing import Any, Final

from audit import crypto
from audit.backend import Query, Row
from audit.batch import DataKey, Pending, Slot, Subject, is_current
from audit.entries import now_iso
from audit.errors import AuditUnavailable, KeyMismatch
from audit.ids import uuid7

KeyRow = tuple[Any, ...]
#: the live keys of some subjects (``_lookup`` adds which)
_STORED_MANY: Final = (
    "SELECT key_id, wrapped, system, customer_id, expires_at FROM audit_subject_key"
    " WHERE erased_at IS NULL"
)
#: the subjects erased after a seq (by other processes)
ERASED_SINCE: Final = (
    "SELECT system, customer_id FROM audit_entry WHERE seq > ? AND action = 'erase'"
)
#: how often the cache drops the keys of slots it did not use meanwhile (one week)
PRUNE_SECONDS: Final = 7 * 86400.0
#: the most keys one process keeps open (least recently used dropped first): about 29 MB
MAX_CACHED_KEYS: Final = 10_000


#: a live key wrapped by another master key: written as two ranges so that both SQLite
#: and PostgreSQL look it up in ``ix_audit_subject_key_kek`` (``<>`` scans the table,
#: and this runs before every batch that makes a key - it cost a scan of every
#: subject's key per new subject). Each range is its own ``ORDER BY kek_id LIMIT 1``:
#: one ``(kek_id < ? OR kek_id > ?) … LIMIT 1`` let PostgreSQL's generic plan (the one
#: a prepared statement keeps) expect a match within the first rows and scan the whole
#: table - with statistics or without - where no key matches, the usual case (issue 11:
#: 0.4 ms at 4,000 keys, 43 ms at 200,000, per batch that makes a key); an ordered
#: range is read from the index whatever the estimates.
OTHER_KEK_SQL: Final = (
    "SELECT key_id FROM (SELECT key_id FROM audit_subject_key WHERE kek_id < ?"
    " AND wrapped IS NOT NULL ORDER BY kek_id DESC LIMIT 1) AS below"
    " UNION ALL SELECT key_id FROM (SELECT key_id FROM audit_subject_key WHERE kek_id > ?"
    " AND wrapped IS NOT NULL ORDER BY kek_id LIMIT 1) AS above"
)

#: :data:`OTHER_KEK_SQL` as a row of the key lookup (a key id, no subject)
_OTHER_KEK_ROW: Final = (
    " UNION ALL SELECT key_id, NULL, NULL, NULL, NULL FROM ("  # noqa: S608 - fixed text
    + OTHER_KEK_SQL
    + ") AS other"
)


class KeyRing:
    def __init__(self, master_key: bytes, max_keys: int = MAX_CACHED_KEYS) -> None:
        self._master = crypto.Sealer(master_key)  # its cipher built once, not per key
        self._kek_id = crypto.kek_id(master_key)
        # in order of use, least recent first (touch moves a used slot to the end)
        self._keys: OrderedDict[Slot, DataKey] = OrderedDict()
        self._max = max_keys
        self._slots: dict[Subject, set[Slot]] = {}
        self._used: set[Slot] = set()  # since the last pruning
        self._pruned = time.monotonic()

    @property
    def cached(self) -> dict[Slot, DataKey]:
        """The keys known to this process (read only by its callers)."""
        return self._keys

    def learn(self, keys: dict[Slot, DataKey]) -> None:
        """Keep the keys a batch looked up or made; beyond ``max_keys`` drop the least
        recently used (dropped, not destroyed: see :meth:`touch`)."""
        cache = self._keys
        cache.update(keys)
        for slot in keys:
            self._slots.setdefault((slot[0], slot[1]), set()).add(slot)
        while len(cache) > self._max:
            self._drop(cache.popitem(last=False)[0])

    def _drop(self, slot: Slot) -> None:
        self._used.discard(slot)  # what is not cached needs no mark: the set stays bounded
        subject = slot[0], slot[1]
        slots = self._slots.get(subject)
        if slots is not None:
            slots.discard(slot)
            if not slots:
                del self._slots[subject]

    def forget(self, subjects: Iterable[Subject]) -> None:
        """Drop every key of the subjects and destroy them (an erasure)."""
        for subject in subjects:
            for slot in self._slots.pop(subject, ()):
                self._used.discard(slot)
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
        cache = self._keys
        for slot in slots:
            if slot in cache:
                cache.move_to_end(slot)  # one C step: the writer thread may read the cache
        if time.monotonic() - self._pruned >= PRUNE_SECONDS:
            keep = self._used | slots
            for slot in [s for s in cache if s not in keep]:
                cache.pop(slot, None)
                self._drop(slot)
            self._used.clear()
            self._pruned = time.monotonic()
        self._used |= slots

    def for_batch(
        self, batch: list[Pending], erased: set[Subject]
    ) -> Generator[Query, list[Row], tuple[dict[Slot, DataKey], dict[Slot, DataKey], list[KeyRow]]]:
        """A step of the chain transaction (:data:`audit.backend.ChainStep`): (the keys
        the batch must seal with, those of them new to this process, the rows of the keys
        created for it). Entries their caller sealed already need none; a subject in
        ``erased`` (by another process, seen in this transaction) has no usable cached
        key. The live keys of every slot missing from the cache are looked up in one
        query, which also checks that the store's keys are all wrapped by this process's
        master key; a new key is made for each slot still without one, unless that check
        found one wrapped by another. Runs on the
        store's writer thread: reads the cache, changes nothing of this object."""
        cached = self._keys
        keys: dict[Slot, DataKey] = {}
        missing: list[Slot] = []
        for item in batch:
            slot = item.slot
            if not item.to_seal or slot in keys or slot in missing:
                continue
            known = None if (slot[0], slot[1]) in erased else cached.get(slot)
            if is_current(item, known):
                continue
            if known is not None:
                keys[slot] = known
            else:
                missing.append(slot)
        new_keys: dict[Slot, DataKey] = {}
        key_rows: list[KeyRow] = []
        if not missing:
            return keys, new_keys, key_rows
        sql, params = _lookup(missing)
        # the master-key check in the same query (a round trip less on PostgreSQL): its
        # row, if any, is the one without a subject
        rows = yield sql + _OTHER_KEK_ROW, [*params, self._kek_id, self._kek_id]
        other_kek = [row for row in rows if row[2] is None]
        stored = self._found([row for row in rows if row[2] is not None], missing)
        for slot in missing:
            found = stored.get(slot)
            if found is None:
                if not key_rows:
                    self._check_not_rotated(other_kek)
                key_id, data_key = uuid7(), crypto.new_data_key()
                key_rows.append(self._row(slot, key_id, data_key))
                found = key_id, crypto.Sealer(data_key)
            keys[slot] = new_keys[slot] = found
        return keys, new_keys, key_rows

    def _found(self, rows: list[Row], missing: list[Slot]) -> dict[Slot, DataKey]:
        """Of the looked-up rows, each wanted slot's first live key, opened."""
        wanted = set(missing)
        found: dict[Slot, DataKey] = {}
        seen: set[Slot] = set()
        for key_id, wrapped, system, cid, expires in rows:
            slot = (system, cid, expires)
            if slot not in wanted or slot in seen:
                continue
            seen.add(slot)  # the first row of a slot decides, as one lookup per slot did
            if wrapped is None:
                continue
            try:
                data_key = crypto.unwrap_key(self._master, bytes(wrapped), key_id, system, cid)
            except crypto.SealError as exc:
                raise KeyMismatch("a subject key does not open under the master key") from exc
            found[slot] = key_id, crypto.Sealer(data_key)
        return found

    def _row(self, slot: Slot, key_id: str, data_key: bytes) -> KeyRow:
        system, cid, expires = slot
        wrapped = crypto.wrap_key(self._master, data_key, key_id, system, cid)
        return key_id, system, cid, wrapped, self._kek_id, now_iso(), expires

    @staticmethod
    def _check_not_rotated(other: list[Row]) -> None:
        """Before wrapping a new key: refuse if the store's keys were re-wrapped under
        another master key since this process started (it would mix master keys)."""
        if other:
            raise AuditUnavailable(
                "the master key was rotated: restart this process with the current key"
            )


def subject_rows(rows: list[Row]) -> list[Subject]:
    return [(str(system), str(cid)) for system, cid in rows]


def _lookup(slots: list[Slot]) -> Query:
    """One query for the live keys of every subject of ``slots`` (the index on
    (customer_id, system): the list of ids is its first column, so both backends look
    each id up whatever their estimates - migration 0007; the slots are told apart from
    the rows)."""
    by_system: dict[str, list[str]] = {}
    for system, cid, _ in slots:
        cids = by_system.setdefault(system, [])
        if cid not in cids:
            cids.append(cid)
    clauses, params = [], []
    for system, cids in by_system.items():
        clauses.append(f"(system = ? AND customer_id IN ({','.join('?' * len(cids))}))")
        params += [system, *cids]
    return _STORED_MANY + " AND (" + " OR ".join(clauses) + ")", params
