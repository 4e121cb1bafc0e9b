"""The read side of the audit log: queries (masked), single entries, entries in clear
for a reveal or an export, all entries for a file export, and verification.

The reader never writes. What must leave a trace when it reads (a reveal, a subject
export) is :class:`audit.log.AuditLog`'s: it writes the admin entry through its writer,
then reads here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Collection
from datetime import datetime
from typing import Any, Final

from audit import crypto
from audit.backend import HEAD_SQL, Backend
from audit.entries import check_key, iso, render
from audit.errors import EntryNotFound, InvalidAuditInput, KeyMismatch, OutOfScope
from audit.retention import erasure
from audit.scope import page_statement
from audit.types import OUTCOMES, Page, VerifyReport
from audit.verify import Progress, verify_chain

MAX_LIMIT: Final = 1000
#: destroyed keys whose erasure (reason, time) a reader keeps at most
_ERASURES_KEPT: Final = 10_000
#: one stored entry: (seq, body, prev_hash, hash)
EntryRow = tuple[Any, ...]


class Reader:
    """Reads one store. ``systems`` (queries, ``get``, ``row``, ``verify``) is the
    reader's scope: only entries of those systems are listed or opened (``OutOfScope``
    for another system's entry), and ``verify`` names a bad entry only within it.
    ``None``: every system. Every entry carries a system: the admin entries (reveal,
    export, erase) that of the subject they concern.
    """

    def __init__(self, backend: Backend, *, master_key: bytes, public_key: bytes) -> None:
        self._backend = backend
        self._master_key = master_key
        self._public_key = public_key
        # why and when destroyed keys were destroyed: fixed once they are, so kept
        self._erasures: dict[str, dict[str, Any] | None] = {}

    @property
    def public_key(self) -> bytes:
        """The Ed25519 key that checkpoints must be signed by."""
        return self._public_key

    # ------------------------------------------------------------------ entries in clear
    async def _data_key(self, key_id: str) -> bytes | None:
        rows = await self._backend.fetchall(
            "SELECT wrapped, system, customer_id FROM audit_subject_key WHERE key_id = ?", [key_id]
        )
        if not rows or rows[0][0] is None:
            return None
        wrapped, system, cid = rows[0]
        try:
            return crypto.unwrap_key(self._master_key, bytes(wrapped), key_id, system, cid)
        except crypto.SealError as exc:  # never report a live value as erased
            raise KeyMismatch(
                "a subject key does not open under this master key (rotated? restart with"
                " the current key)"
            ) from exc

    async def in_clear(
        self,
        seq: int,
        body: str,
        prev: str,
        hash_: str,
        cache: dict[str, bytes | None] | None = None,
    ) -> dict[str, Any]:
        """The entry with its sealed values opened (``erased`` once the key is gone, and
        then ``erasure``: why - ``request`` or ``retention`` - and when); ``cache`` keeps
        data keys across the entries of one read."""
        cache = {} if cache is None else cache
        key_ids = _key_ids(body)
        for key_id in key_ids:
            if key_id not in cache:
                cache[key_id] = await self._data_key(key_id)
        if not key_ids:
            return render(int(seq), body, prev, hash_)
        entry = render(int(seq), body, prev, hash_, key=cache.__getitem__)
        for key_id in key_ids:
            if cache[key_id] is None:
                entry["erasure"] = await self._erasure(key_id)
                break
        return entry

    async def _erasure(self, key_id: str) -> dict[str, Any] | None:
        if key_id not in self._erasures:
            found = await erasure(self._backend, [key_id])
            if len(self._erasures) >= _ERASURES_KEPT:
                self._erasures.clear()
            self._erasures[key_id] = found
        return self._erasures[key_id]

    async def open_intents(self) -> list[EntryRow]:
        """Every intent without an outcome, oldest first: (seq, body, prev_hash, hash,
        created_at)."""
        return await self._backend.fetchall(
            "SELECT e.seq, e.body, e.prev_hash, e.hash, o.created_at FROM audit_open_intent o"
            " JOIN audit_entry e ON e.audit_id = o.audit_id ORDER BY o.seq"
        )

    async def open_intent(self, intent_id: str) -> dict[str, Any]:
        """The (masked) entry of the open intent ``intent_id``, or EntryNotFound."""
        rows = await self._backend.fetchall(
            "SELECT e.seq, e.body, e.prev_hash, e.hash FROM audit_entry e"
            " JOIN audit_open_intent o ON o.audit_id = e.audit_id WHERE e.audit_id = ?",
            [intent_id],
        )
        if not rows:
            raise EntryNotFound(f"no open intent {intent_id}")
        return render(int(rows[0][0]), rows[0][1], rows[0][2], rows[0][3])

    async def following(self, intent_id: str) -> list[dict[str, Any]]:
        """The (masked) entries that name ``intent_id`` as their intent (its outcome, a
        later resolution), oldest first."""
        rows = await self._backend.fetchall(
            "SELECT seq, body, prev_hash, hash FROM audit_entry WHERE intent_id = ? ORDER BY seq",
            [intent_id],
        )
        return [render(int(r[0]), r[1], r[2], r[3]) for r in rows]

    async def of_subject(self, system: str, customer_id: str) -> list[EntryRow]:
        """Every stored entry on one subject, oldest first."""
        return await self._backend.fetchall(
            "SELECT seq, body, prev_hash, hash FROM audit_entry"
            " WHERE system = ? AND customer_id = ? ORDER BY seq",
            [system, customer_id],
        )

    # ------------------------------------------------------------------ queries
    async def query(
        self,
        *,
        system: str | None = None,
        customer_id: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        systems: Collection[str] | None = None,
    ) -> Page:
        """Entries newest first, masked; ``since`` inclusive, ``until`` exclusive; only
        entries of ``systems`` when given (in the query, so pages stay full)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidAuditInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidAuditInput(f"outcome must be one of {sorted(OUTCOMES)}")
        where: list[str] = []
        params: list[Any] = []
        allowed = None if systems is None else sorted(set(systems))
        if allowed == []:
            return Page(entries=[], next_cursor=None)
        for column, value in (
            ("system", system),
            ("customer_id", customer_id),
            ("actor", actor),
            ("outcome", outcome),
        ):
            if value is not None:
                check_key(value, column)  # a value no entry can hold: refused, both stores
                where.append(f"{column} = ?")
                params.append(value)
        for op, moment in ((">=", since), ("<", until)):
            if moment is not None:
                if not isinstance(moment, datetime):
                    raise InvalidAuditInput("since and until must be datetimes")
                where.append(f"time {op} ?")
                params.append(iso(moment))
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 19:
                raise InvalidAuditInput("invalid cursor")
            where.append("seq < ?")
            params.append(int(cursor))
        sql, params = page_statement(
            where, params, systems=allowed, limit=limit + 1,
            by_system=system is None and customer_id is None,
        )  # fmt: skip
        rows = await self._backend.fetchall(sql, params)
        entries = [render(int(r[0]), r[1], r[2], r[3]) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return Page(entries=entries, next_cursor=next_cursor)

    async def row(
        self, audit_id: str, systems: Collection[str] | None
    ) -> EntryRow:
        """The stored entry ``audit_id``: EntryNotFound, or OutOfScope outside ``systems``."""
        if not isinstance(audit_id, str) or not audit_id:
            raise EntryNotFound("no such audit entry")
        try:
            check_key(audit_id, "audit_id")
        except InvalidAuditInput:
            raise EntryNotFound("no such audit entry") from None
        rows = await self._backend.fetchall(
            "SELECT seq, body, prev_hash, hash, system FROM audit_entry WHERE audit_id = ?",
            [audit_id],
        )
        if not rows:
            raise EntryNotFound(f"no audit entry {audit_id[:64]}")
        if systems is not None and rows[0][4] not in systems:
            raise OutOfScope("the entry lies outside the reader's system scope")
        return tuple(rows[0][:4])

    async def get(
        self, audit_id: str, *, systems: Collection[str] | None = None
    ) -> dict[str, Any]:
        seq, body, prev, hash_ = await self.row(audit_id, systems)
        return render(int(seq), body, prev, hash_)

    async def iter_entries(
        self,
        *,
        clear: bool = False,
        chunk: int = 5000,
        on_chunk: Callable[[int], object] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """All entries oldest first (masked unless ``clear``): for exports to files."""
        last = 0
        cache: dict[str, bytes | None] = {}
        while True:
            rows = await self._backend.fetchall(
                "SELECT seq, body, prev_hash, hash FROM audit_entry"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                [last, chunk],
            )
            if not rows:
                return
            for row in rows:
                if clear:
                    yield await self.in_clear(row[0], row[1], row[2], row[3], cache)
                else:
                    yield render(int(row[0]), row[1], row[2], row[3])
            last = int(rows[-1][0])
            if on_chunk is not None:
                on_chunk(len(rows))

    async def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry: (0, 64 zeros) on an empty log."""
        row = (await self._backend.fetchall(HEAD_SQL))[0]
        return int(row[0]), str(row[1])

    # ------------------------------------------------------------------ verification
    async def verify(
        self, *, on_progress: Progress | None = None, systems: Collection[str] | None = None
    ) -> VerifyReport:
        """Recompute the chain up to the head and check every signed checkpoint
        (:mod:`audit.verify`); ``on_progress(checked, total)`` after each chunk.

        The verdict is always the whole chain's; ``first_bad`` is named only when that
        entry's system lies within ``systems`` (else ``None``: its id would point a
        scoped reader at another system's entry)."""
        report = await verify_chain(self._backend, self._public_key, on_progress)
        if report.first_bad is None or systems is None:
            return report
        rows = await self._backend.fetchall(
            "SELECT system FROM audit_entry WHERE audit_id = ?", [report.first_bad]
        )
        if rows and rows[0][0] in systems:
            return report
        return dataclasses.replace(report, first_bad=None)


def _key_ids(body: str) -> list[str]:
    parsed = json.loads(body)
    key_id = parsed.get("key_id")
    return [key_id] if isinstance(key_id, str) and parsed.get("sealed") else []
