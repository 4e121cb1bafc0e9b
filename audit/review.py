"""Reading the audit log: queries (masked), reveal, subject export, verification."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Callable, Collection
from datetime import datetime
from typing import Any, Final

from tqdm import tqdm

from audit import crypto
from audit.backend import HEAD_SQL, Backend
from audit.chain import ChainState, check_rows
from audit.entries import base_body, check_key, check_reason, iso, render
from audit.errors import EntryNotFound, InvalidAuditInput, KeyMismatch, OutOfScope
from audit.ids import uuid7
from audit.types import OUTCOMES, Outcome, Page, VerifyReport

_VERIFY_CHUNK: Final = 10_000  # rows per read; hashing one chunk blocks the loop ~50 ms
MAX_LIMIT: Final = 1000


class Review:
    """The read side; :class:`audit.log.AuditLog` adds the write side.

    ``systems`` (queries, ``get``, ``reveal``, ``verify``) is the reader's scope: only
    entries of those systems are listed, opened or revealed (``OutOfScope`` for another
    system's entry), and ``verify`` names a bad entry only within it. ``None``: every
    system. Every entry carries a system: the admin entries (reveal, export, erase)
    that of the subject they concern.
    """

    def __init__(self, backend: Backend, *, master_key: bytes, public_key: bytes) -> None:
        self._backend = backend
        self._master_key = master_key
        self._public_key = public_key

    async def _write_admin(self, body: dict[str, Any]) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    # ------------------------------------------------------------------ rendering
    def _render(self, seq: int, body: str, prev: str, hash_: str, *, clear: bool) -> dict[str, Any]:
        if clear:  # pragma: no cover - clear rendering goes through _clear_entry
            raise ValueError("use _clear_entry")
        return render(int(seq), body, prev, hash_)

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

    async def _clear_entry(
        self,
        seq: int,
        body: str,
        prev: str,
        hash_: str,
        cache: dict[str, bytes | None] | None = None,
    ) -> dict[str, Any]:
        cache = {} if cache is None else cache
        masked = render(int(seq), body, prev, hash_)
        key_ids = _key_ids(body)
        for key_id in key_ids:
            if key_id not in cache:
                cache[key_id] = await self._data_key(key_id)
        if not key_ids:
            return masked
        return render(int(seq), body, prev, hash_, key=cache.__getitem__)

    def _admin_body(
        self,
        action: str,
        system: str,
        customer_id: str,
        *,
        actor: str,
        roles: tuple[str, ...],
        request_id: str,
        reason: str | None = None,
        target_id: str | None = None,
    ) -> dict[str, Any]:
        for value, what in (
            (system, "system"),
            (customer_id, "customer_id"),
            (actor, "actor"),
            (request_id, "request_id"),
        ):
            if not isinstance(value, str) or not value:
                raise InvalidAuditInput(f"{what} must be a non-empty string")
            check_key(value, what)
        return base_body(
            uuid7(),
            actor=actor,
            roles=roles,
            system=system,
            customer_id=customer_id,
            purpose=None,
            request_id=request_id,
            action=action,
            phase="outcome",
            outcome=_APPLIED,
            reason=reason,
            target_id=target_id,
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
        if systems is not None:
            allowed = sorted(set(systems))
            if not allowed:
                return Page(entries=[], next_cursor=None)
            where.append(f"system IN ({', '.join('?' * len(allowed))})")
            params.extend(allowed)
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
        sql = "SELECT seq, body, prev_hash, hash FROM audit_entry"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit + 1)
        rows = await self._backend.fetchall(sql, params)
        entries = [render(int(r[0]), r[1], r[2], r[3]) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return Page(entries=entries, next_cursor=next_cursor)

    async def _row(
        self, audit_id: str, systems: Collection[str] | None
    ) -> tuple[Any, ...]:
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
        seq, body, prev, hash_ = await self._row(audit_id, systems)
        return render(int(seq), body, prev, hash_)

    async def reveal(
        self,
        audit_id: str,
        *,
        actor: str,
        roles: tuple[str, ...],
        reason: str,
        request_id: str,
        systems: Collection[str] | None = None,
    ) -> tuple[dict[str, Any], str]:
        """The entry in clear; first writes (durably) a ``reveal`` entry naming the reason.
        An entry outside ``systems`` is refused before anything is written."""
        reason = check_reason(reason)
        seq, body, prev, hash_ = await self._row(audit_id, systems)
        masked = render(int(seq), body, prev, hash_)
        reveal_id = await self._write_admin(
            self._admin_body(
                "reveal",
                masked["system"],
                masked["customer_id"],
                actor=actor,
                roles=roles,
                request_id=request_id,
                reason=reason,
                target_id=audit_id,
            )
        )
        return await self._clear_entry(seq, body, prev, hash_), reveal_id

    async def export_subject(
        self,
        system: str,
        customer_id: str,
        *,
        actor: str,
        roles: tuple[str, ...],
        request_id: str,
    ) -> tuple[list[dict[str, Any]], str]:
        """GDPR Art. 15: every entry on one subject, oldest first, in clear unless erased."""
        body = self._admin_body(
            "export", system, customer_id, actor=actor, roles=roles, request_id=request_id
        )
        rows = await self._backend.fetchall(
            "SELECT seq, body, prev_hash, hash FROM audit_entry"
            " WHERE system = ? AND customer_id = ? ORDER BY seq",
            [system, customer_id],
        )
        export_id = await self._write_admin(body)
        cache: dict[str, bytes | None] = {}
        return [await self._clear_entry(r[0], r[1], r[2], r[3], cache) for r in rows], export_id

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
                    yield await self._clear_entry(row[0], row[1], row[2], row[3], cache)
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
        self, *, progress: bool = False, systems: Collection[str] | None = None
    ) -> VerifyReport:
        """Recompute the chain up to the head and check every signed checkpoint.

        The verdict is always the whole chain's; ``first_bad`` is named only when that
        entry's system lies within ``systems`` (else ``None``: its id would point a
        scoped reader at another system's entry)."""
        report = await self._verify(progress)
        if report.first_bad is None or systems is None:
            return report
        rows = await self._backend.fetchall(
            "SELECT system FROM audit_entry WHERE audit_id = ?", [report.first_bad]
        )
        if rows and rows[0][0] in systems:
            return report
        return dataclasses.replace(report, first_bad=None)

    async def _verify(self, progress: bool) -> VerifyReport:
        # checkpoints first, then the head: appends meanwhile cannot make a checkpoint
        # look as if it lay beyond the end of the chain
        checkpoints = await self._backend.fetchall(
            "SELECT seq, hash, time, public_key, signature FROM audit_checkpoint ORDER BY seq"
        )
        head = (await self._backend.fetchall(HEAD_SQL))[0]
        head_seq, head_hash = int(head[0]), head[1]
        marks = {int(cp[0]): cp[1] for cp in checkpoints}
        seen: dict[int, str] = {}
        state = ChainState()
        with tqdm(
            total=head_seq, unit="entries", file=sys.stderr, disable=not progress, desc="verify"
        ) as bar:
            while state.seq < head_seq:
                rows = await self._backend.fetchall(
                    "SELECT seq, body, prev_hash, hash FROM audit_entry"
                    " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    [state.seq, head_seq, _VERIFY_CHUNK],
                )
                if not rows:
                    break
                if not check_rows(state, rows, marks, seen.__setitem__):
                    break
                bar.update(len(rows))
        report = _report(state, checkpoints=0)
        if not state.ok:
            return report
        if state.seq != head_seq or state.head != head_hash:
            return _report(
                state,
                reason=(
                    f"the chain ends at seq {state.seq} but the head row says seq {head_seq}:"
                    " entries were removed or the head was altered"
                ),
            )
        public_hex = self._public_key.hex()
        for cp_seq, cp_hash, cp_time, cp_key, cp_sig in checkpoints:
            cp_seq = int(cp_seq)
            if cp_key != public_hex:
                return _report(
                    state, reason=f"checkpoint at seq {cp_seq} is signed by an unknown key"
                )
            try:
                signature = bytes.fromhex(cp_sig)
            except ValueError:
                signature = b""
            if not crypto.verify_checkpoint(self._public_key, signature, cp_seq, cp_hash, cp_time):
                return _report(state, reason=f"checkpoint at seq {cp_seq}: bad signature")
            if cp_seq > state.seq:
                return _report(
                    state,
                    reason=(
                        f"a signed checkpoint covers seq {cp_seq} but the chain ends at seq"
                        f" {state.seq}: the tail was truncated"
                    ),
                )
            if seen.get(cp_seq) != cp_hash:
                bad = await self._backend.fetchall(
                    "SELECT audit_id FROM audit_entry WHERE seq = ?", [cp_seq]
                )
                return _report(
                    state,
                    first_bad=bad[0][0] if bad else None,
                    reason=(f"the chain at seq {cp_seq} differs from its signed checkpoint"),
                )
        return _report(state, checkpoints=len(checkpoints))


_APPLIED: Final = Outcome("applied")


def _report(
    state: ChainState,
    *,
    first_bad: str | None = None,
    reason: str | None = None,
    checkpoints: int = 0,
) -> VerifyReport:
    reason = reason or state.reason
    return VerifyReport(
        ok=reason is None,
        entries=state.entries,
        head=state.head,
        first_bad=first_bad or state.first_bad,
        reason=reason,
        checkpoints=checkpoints,
    )


def _key_ids(body: str) -> list[str]:
    parsed = json.loads(body)
    key_id = parsed.get("key_id")
    return [key_id] if isinstance(key_id, str) and parsed.get("sealed") else []
