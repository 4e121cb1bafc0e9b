"""Verification of the whole log: recompute the chain up to the head, then check every
signed checkpoint against it (the checkpoints catch a truncated tail or a rewritten
chain whose hashes were recomputed). On PostgreSQL each row's query columns are checked
against its hashed body as well: the writer sends them (migration 0006), so nothing but
this check stops a row from being hidden from the queries by an altered column.

Progress goes to a callback, ``on_progress(entries checked, entries in all)``, after each
chunk read; the CLI turns it into a progress bar, the library draws nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec
import orjson

from audit import crypto
from audit.backend import HEAD_SQL, QUERY_COLUMNS, Backend
from audit.chain import ChainState, body_audit_id, check_rows, query_values
from audit.types import VerifyReport

_READ: Final = (
    "SELECT seq, body, prev_hash, hash FROM audit_entry WHERE seq > ? ORDER BY seq LIMIT ?"
)
#: the query columns as one JSON array (one text for the driver to decode, not eleven)
_READ_WITH_COLUMNS: Final = _READ.replace(
    "hash FROM", f"hash, json_build_array({', '.join(QUERY_COLUMNS)})::text FROM"
)

#: (entries checked so far, entries in all)
Progress = Callable[[int, int], object]

_VERIFY_CHUNK: Final = 10_000  # rows per read; hashing one chunk blocks the loop ~50 ms


async def verify_chain(
    backend: Backend, public_key: bytes, on_progress: Progress | None = None
) -> VerifyReport:
    """The whole chain's verdict (masked: ``first_bad`` is an entry id, never a value)."""
    # checkpoints first, then the head: appends meanwhile cannot make a checkpoint
    # look as if it lay beyond the end of the chain
    checkpoints = await backend.fetchall(
        "SELECT seq, hash, time, public_key, signature FROM audit_checkpoint ORDER BY seq"
    )
    head = (await backend.fetchall(HEAD_SQL))[0]
    head_seq, head_hash = int(head[0]), head[1]
    marks = {int(cp[0]): cp[1] for cp in checkpoints}
    seen: dict[int, str] = {}
    state = await _recompute(backend, head_seq, marks, seen, on_progress)
    if not state.ok:
        return _report(state)
    if state.seq != head_seq or state.head != head_hash:
        return _report(
            state,
            reason=(
                f"the chain ends at seq {state.seq} but the head row says seq {head_seq}:"
                " entries were removed or the head was altered"
            ),
        )
    return await _check_checkpoints(backend, public_key, state, checkpoints, seen)


async def _recompute(
    backend: Backend,
    head_seq: int,
    marks: Mapping[int, str],
    seen: dict[int, str],
    on_progress: Progress | None,
) -> ChainState:
    """Hash every entry up to ``head_seq`` in order; ``seen`` gets the recomputed hash
    at each seq of ``marks``.

    Rows are read ``_VERIFY_CHUNK`` at a time as ``seq > last ORDER BY seq LIMIT n``,
    which any planner reads along the primary key; with an upper bound as well,
    PostgreSQL, on a table it had not analysed yet, sorted every row up to it for each
    chunk (45 ms instead of 6 for 10,000 rows). The next chunk is read while this one is
    hashed (the store's thread or server works meanwhile); rows appended after the head
    was read are left out."""
    state = ChainState()

    columns = backend.kind == "postgresql"  # SQLite's are generated from the body
    sql = _READ_WITH_COLUMNS if columns else _READ

    def read(after: int) -> asyncio.Future[Sequence[Sequence[Any]]]:
        return asyncio.ensure_future(backend.fetch_rows(sql, [after, _VERIFY_CHUNK]))

    reading = read(0) if head_seq > 0 else None
    while reading is not None:
        rows = await reading
        if not rows:
            break
        last = int(rows[-1][0])
        if last > head_seq:  # appended after the head was read: not this verification's
            rows = [row for row in rows if int(row[0]) <= head_seq]
        reading = read(last) if last < head_seq else None
        bad = first_disagreeing(rows) if columns else None
        if bad is not None:  # a break of the chain up to that row, its own included, first
            if check_rows(state, rows[:bad], marks, seen.__setitem__):
                probe = dataclasses.replace(state)
                if check_rows(probe, rows[bad : bad + 1]):
                    probe.first_bad = body_audit_id(rows[bad][1])
                    probe.reason = (
                        f"entry seq {rows[bad][0]}: its query columns do not match its body"
                        " (an index column was altered)"
                    )
                state.first_bad, state.reason = probe.first_bad, probe.reason
            if reading is not None:
                await reading
            break
        if not check_rows(state, rows, marks, seen.__setitem__):
            if reading is not None:
                await reading  # let the read in flight finish; its rows are not needed
            break
        if on_progress is not None:
            on_progress(state.seq, head_seq)
    return state


class _Columns(msgspec.Struct):
    """The members of a body that are query columns (:data:`QUERY_COLUMNS`, in order);
    msgspec skips the others without building them."""

    audit_id: str | None = None
    time: str | None = None
    system: str | None = None
    customer_id: str | None = None
    actor: str | None = None
    action: str | None = None
    phase: str | None = None
    outcome: str | None = None
    intent_id: str | None = None
    problem_code: str | None = None
    key_id: str | None = None


assert _Columns.__struct_fields__ == QUERY_COLUMNS
_of_body = msgspec.json.Decoder(_Columns).decode
_of_row = msgspec.json.Decoder(list[str | None]).decode


def first_disagreeing(rows: Sequence[Sequence[Any]]) -> int | None:
    """The index of the first row ``(seq, body, prev_hash, hash, columns)`` whose query
    columns (a JSON array, :data:`QUERY_COLUMNS` in order) are not its body's
    (:func:`audit.chain.query_values`), or None. A body whose members there are not all
    strings or null (none the log writes) is parsed whole and compared as the writer
    would have sent it."""
    astuple = msgspec.structs.astuple
    for i, row in enumerate(rows):
        try:
            stored = _of_row(row[4])
            try:
                if list(astuple(_of_body(row[1]))) == stored:
                    continue
            except msgspec.ValidationError:  # a member that is not a string: the slow way
                if list(query_values(orjson.loads(row[1]))) == stored:
                    continue
        except (msgspec.DecodeError, orjson.JSONDecodeError, AttributeError):  # not JSON
            pass
        return i
    return None


async def _check_checkpoints(
    backend: Backend,
    public_key: bytes,
    state: ChainState,
    checkpoints: list[tuple[Any, ...]],
    seen: dict[int, str],
) -> VerifyReport:
    public_hex = public_key.hex()
    for cp_seq, cp_hash, cp_time, cp_key, cp_sig in checkpoints:
        cp_seq = int(cp_seq)
        if cp_key != public_hex:
            return _report(state, reason=f"checkpoint at seq {cp_seq} is signed by an unknown key")
        try:
            signature = bytes.fromhex(cp_sig)
        except ValueError:
            signature = b""
        if not crypto.verify_checkpoint(public_key, signature, cp_seq, cp_hash, cp_time):
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
            bad = await backend.fetchall("SELECT audit_id FROM audit_entry WHERE seq = ?", [cp_seq])
            return _report(
                state,
                first_bad=bad[0][0] if bad else None,
                reason=f"the chain at seq {cp_seq} differs from its signed checkpoint",
            )
    return _report(state, checkpoints=len(checkpoints))


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
