"""What one group commit writes: the entries on their way (:class:`Pending`), the pure
step that chains a batch onto the head - sequence numbers, hashes, and the rows of every
table the append touches (:func:`chain`) - and the answers to its callers.

The statements run in this order in one transaction: new subject keys, the entries, the
intents opened, the intents closed, the keys an erasure destroys, the entries' own further
statements (an expiry's keys, :mod:`audit.retention`), a checkpoint when one is due, the
head.

A subject has a data key per *slot*: the end of the retention period of the values it
seals (``expires``, :func:`audit.retention.slot_expiry`), or none (kept until erased). The
values of one entry share its slot, and a slot's key can be destroyed as a whole when
that period ends, without touching any entry (:mod:`audit.retention`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit import crypto
from audit.backend import INSERT_ENTRY, INSERT_ENTRY_COLUMNS, Statement
from audit.chain import canonical, entry_hash, query_values
from audit.entries import ToSeal
from audit.errors import InvalidAuditInput
from audit.types import Intent

Subject = tuple[str, str]
#: which key of a subject seals an entry: (system, customer id, end of the retention
#: period of its values, or None: kept until erased)
Slot = tuple[str, str, str | None]
#: a subject's data key: (key id, its cipher); destroyed when the key is erased
DataKey = tuple[str, crypto.Sealer]

INSERT_KEY = (
    "INSERT INTO audit_subject_key"
    " (key_id, system, customer_id, wrapped, kek_id, created_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_OPEN = "INSERT INTO audit_open_intent (audit_id, seq, created_at) VALUES (?, ?, ?)"
DELETE_OPEN = "DELETE FROM audit_open_intent WHERE audit_id = ?"
DESTROY_KEYS = (
    "UPDATE audit_subject_key SET wrapped = NULL, erased_at = ?"
    " WHERE system = ? AND customer_id = ? AND erased_at IS NULL"
)
INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoint (seq, hash, time, public_key, signature) VALUES (?, ?, ?, ?, ?)"
)
UPDATE_HEAD = (
    "UPDATE audit_head SET seq = ?, hash = ?, checkpoint_seq = ?, checkpoint_at = ? WHERE id = 1"
)


class Pending:
    """One entry on its way to the chain.

    A plain class with slots, not a dataclass: two are made per change, and a slotted
    ``__init__`` with no default factories costs less (issue 11). Its repr names no
    value (the body may hold personal data)."""

    __slots__ = (
        "also", "body", "closes_intent", "durable", "erase", "exclusive_close", "expires",
        "future", "intent", "key_id", "opens_intent", "settled", "slot", "subject", "text",
        "to_seal",
    )  # fmt: skip

    def __init__(
        self,
        body: dict[str, Any],
        subject: Subject,
        to_seal: Sequence[ToSeal] = (),
        *,
        opens_intent: bool = False,
        closes_intent: str | None = None,
        exclusive_close: bool = False,
        erase: bool = False,
        durable: bool = True,
        expires: str | None = None,
        also: Sequence[Statement] = (),
        settled: Callable[[Pending], None] | None = None,
    ) -> None:
        self.body = body
        self.subject = subject
        #: one side's values to seal, per side that has personal values
        self.to_seal = to_seal
        self.opens_intent = opens_intent
        self.closes_intent = closes_intent
        self.exclusive_close = exclusive_close
        self.erase = erase
        #: False: its commit need not wait for the disk (a later durable commit syncs it)
        self.durable = durable
        #: the end of the retention period of its sealed values (None: kept until erased)
        self.expires = expires
        #: further statements of the same transaction (an expiry destroys its keys)
        self.also = also
        #: called (in the writer's task) once the entry's caller has been answered -
        #: written or not - or found gone (its future cancelled): what the log keeps of
        #: an entry in flight is let go there, without a done callback per future
        self.settled = settled
        self.future: asyncio.Future[str] | None = None
        #: the checked intent this entry opens (set by ``AuditLog.begin_queued``): its
        #: body, and its outcome's, are encoded the short way (:mod:`audit.record`)
        self.intent: Intent | None = None
        # Prepared by the caller, outside the append lock, when the subject's key is known:
        self.text: str | None = None
        self.key_id: str | None = None
        #: the key this entry's values are sealed under: its subject's, for its period
        #: (made once: the writer looks it up several times per entry)
        self.slot: Slot = (subject[0], subject[1], expires)

    def __repr__(self) -> str:
        return (
            f"Pending(opens_intent={self.opens_intent}, closes_intent={self.closes_intent!r},"
            f" erase={self.erase}, durable={self.durable}, key_id={self.key_id!r})"
        )


@dataclass
class Chained:
    """A batch chained onto the head: the new head, and per entry its id (``None``: an
    exclusive close of an intent that is closed already, not written)."""

    seq: int
    head_hash: str
    ids: list[str | None]
    statements: list[Statement]


def seal_into(item: Pending, key: DataKey) -> None:
    """Seal the entry's personal values under its subject's data key, into its body: per
    side, the sorted paths and one ciphertext of their values (body format 2)."""
    key_id, sealer = key
    body = item.body
    audit_id = body["audit_id"]
    body["sealed"] = {
        side: {"paths": list(paths), "box": crypto.seal_side(sealer, plain, audit_id, side, paths)}
        for side, paths, plain in item.to_seal
    }
    body["key_id"] = key_id


def is_current(item: Pending, cached: DataKey | None) -> bool:
    """Is the caller's prepared text still right (sealed under the subject's key now)?"""
    if item.text is None:
        return False
    if not item.to_seal:
        return True
    return cached is not None and cached[0] == item.key_id


def chain(
    batch: list[Pending],
    *,
    seq: int,
    head_hash: str,
    keys: Mapping[Slot, DataKey],
    cached: Mapping[Slot, DataKey],
    still_open: set[str],
    now: str,
    query_columns: bool = False,
) -> Chained:
    """Number, seal where needed, encode and hash the batch's entries after ``(seq,
    head_hash)``. ``keys``: the data keys looked up for this batch; ``cached``: those the
    callers sealed with; ``still_open``: of the exclusive closes, the intents still open.
    ``query_columns``: the entries' rows carry their query columns, taken from the body
    just encoded (:data:`INSERT_ENTRY_COLUMNS`, PostgreSQL; SQLite generates them)."""
    rows: list[tuple[Any, ...]] = []
    opens: list[tuple[str, int, str]] = []
    closes: list[tuple[str]] = []
    destroys: list[tuple[str, str, str]] = []
    also: list[Statement] = []
    ids: list[str | None] = []
    for item in batch:
        if item.exclusive_close and item.closes_intent not in still_open:
            ids.append(None)
            continue
        body = item.body
        text = item.text
        if text is None or item.slot in keys or not is_current(item, cached.get(item.slot)):
            if item.to_seal:
                seal_into(item, keys[item.slot])
            text = canonical(body)
        seq += 1
        digest = entry_hash(seq, head_hash, text)
        if query_columns:
            rows.append((seq, text, head_hash, digest, *query_values(body)))
        else:
            rows.append((seq, text, head_hash, digest))
        head_hash = digest
        ids.append(body["audit_id"])
        if item.opens_intent:
            opens.append((body["audit_id"], seq, body["time"]))
        if item.closes_intent:
            closes.append((item.closes_intent,))
        if item.erase:
            destroys.append((now, item.subject[0], item.subject[1]))
        also.extend(item.also)
    statements: list[Statement] = [
        (INSERT_ENTRY_COLUMNS if query_columns else INSERT_ENTRY, rows),
        (INSERT_OPEN, opens),
        (DELETE_OPEN, closes),
        (DESTROY_KEYS, destroys),
        *also,
    ]
    return Chained(seq, head_hash, ids, statements)


def resolve(batch: list[Pending], ids: list[str | None]) -> None:
    """Answer the callers of a committed batch: each its entry's id (``None``: an
    exclusive close of an intent closed already)."""
    for item, audit_id in zip(batch, ids, strict=True):
        future = item.future
        if future is not None and not future.done():
            if audit_id is None:
                future.set_exception(InvalidAuditInput("that intent is already closed"))
            else:
                future.set_result(audit_id)
        _settle(item)


def fail(items: list[Pending], exc: BaseException) -> None:
    """Answer the callers of entries that were not written with ``exc``."""
    for item in items:
        if item.future is not None and not item.future.done():
            item.future.set_exception(exc)
        _settle(item)


def _settle(item: Pending) -> None:
    """Call the entry's ``settled`` hook, once (an entry failed twice - taken and in
    flight when the writer stops - is let go once)."""
    hook = item.settled
    if hook is not None:
        item.settled = None
        hook(item)
