"""One segment of the chain checked on its own, here or in a helper process.

Verify (:mod:`audit.verify`) cuts the chain into segments of ``limit`` rows: segment
``lo`` is ``seq > lo ORDER BY seq LIMIT limit``. A segment is checked starting from the
``prev_hash`` its first row claims (:func:`check_segment`); :func:`link` then joins the
segments in order, checking that each one's first ``prev_hash`` is the hash the segment
before it ended on. Every hash link is checked exactly once, and the first break found is
the one a single pass over the whole chain finds, with the same reason and entry.

On PostgreSQL a segment can be checked by a helper process (:func:`helper_main`) that
reads its rows from the server itself: hashing and parsing the bodies are CPU work in
Python, which one process does on one core at a time. A helper imports only this module,
:mod:`audit.chain` and :mod:`audit.backend` (not the ``audit`` package), asyncpg and
msgspec; it speaks JSON lines on stdin and stdout (the first line from the parent carries
the DSN, which is never put on a command line).
"""

from __future__ import annotations

import dataclasses
import errno
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import msgspec
import orjson

from audit.backend import QUERY_COLUMNS
from audit.chain import ChainState, body_audit_id, check_rows, query_values

READ: Final = (
    "SELECT seq, body, prev_hash, hash FROM audit_entry WHERE seq > ? ORDER BY seq LIMIT ?"
)
#: PostgreSQL: the query columns as they are stored, after the four of the chain. With
#: one ``json_build_array`` of them instead, the read cost the server 3.8 µs a row, not
#: 2.3 (and this process 0.5 µs less; docs/performance.md, branch i11-pgverify)
READ_WITH_COLUMNS: Final = READ.replace("hash FROM", f"hash, {', '.join(QUERY_COLUMNS)} FROM")
#: the same as asyncpg takes it (a helper does not load the PostgreSQL store's module)
_HELPER_READ: Final = (
    READ_WITH_COLUMNS.replace("seq, body,", "seq, body::text,")
    .replace("?", "$1", 1)
    .replace("?", "$2", 1)
)
_COLUMN_COUNT: Final = len(QUERY_COLUMNS)


@dataclasses.dataclass
class Segment:
    """What checking the rows of segment ``lo`` found. ``entries`` rows were checked
    before its first break (``reason``; all of them without one), ending on ``seq`` with
    hash ``head``; ``first_seq``, ``start_prev`` and ``first_id`` are its first row's seq,
    ``prev_hash`` and entry id (None: the segment has no rows); ``marks`` the hashes at
    the seqs asked for."""

    lo: int
    entries: int = 0
    seq: int = 0
    head: str | None = None
    first_seq: int | None = None
    start_prev: str | None = None
    first_id: str | None = None
    first_bad: str | None = None
    reason: str | None = None
    marks: dict[int, str] = dataclasses.field(default_factory=dict)


class _Columns(msgspec.Struct, gc=False):
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


def first_disagreeing(rows: Sequence[Sequence[Any]]) -> int | None:
    """The index of the first row ``(seq, body, prev_hash, hash, *columns)`` whose query
    columns (:data:`QUERY_COLUMNS`, in order) are not its body's
    (:func:`audit.chain.query_values`), or None. A body whose members there are not all
    strings or null (none the log writes) is parsed whole and compared as the writer
    would have sent it."""
    astuple = msgspec.structs.astuple
    end = 4 + _COLUMN_COUNT
    for i, row in enumerate(rows):
        stored = row[4:end]
        try:
            try:
                if astuple(_of_body(row[1])) == stored:
                    continue
            except msgspec.ValidationError:  # a member that is not a string: the slow way
                if query_values(orjson.loads(row[1])) == stored:
                    continue
        except (msgspec.DecodeError, orjson.JSONDecodeError, AttributeError):  # not JSON
            pass
        return i
    return None


def check_segment(
    rows: Sequence[Sequence[Any]], lo: int, marks: Collection[int], *, columns: bool
) -> Segment:
    """Check the rows of segment ``lo`` (``seq, body, prev_hash, hash``, then the query
    columns when ``columns``) from the ``prev_hash`` of the first; stop at the first
    break. A row's query columns are compared after its hash: a break of the chain at or
    before that row is the one reported."""
    segment = Segment(lo, seq=lo)
    if not rows:
        return segment
    first = rows[0]
    segment.first_seq, segment.start_prev = int(first[0]), first[2]
    segment.first_id = body_audit_id(first[1])
    state = ChainState(seq=lo, head=first[2])
    bad = first_disagreeing(rows) if columns else None
    on_mark = segment.marks.__setitem__
    if bad is None:
        check_rows(state, rows, marks, on_mark)  # type: ignore[arg-type]
    elif check_rows(state, rows[:bad], marks, on_mark):  # type: ignore[arg-type]
        probe = dataclasses.replace(state)
        if check_rows(probe, rows[bad : bad + 1]):  # its hash holds: the columns are the break
            probe.first_bad = body_audit_id(rows[bad][1])
            probe.reason = (
                f"entry seq {rows[bad][0]}: its query columns do not match its body"
                " (an index column was altered)"
            )
        state.first_bad, state.reason = probe.first_bad, probe.reason
    segment.entries, segment.seq = state.entries, state.seq
    segment.head = state.head if state.entries else None
    segment.first_bad, segment.reason = state.first_bad, state.reason
    return segment


def link(state: ChainState, segment: Segment, seen: dict[int, str]) -> bool:
    """Join ``segment`` to the chain checked so far (``state``, ending where the segment
    begins); ``seen`` gets its marks. False once the chain breaks or ends there."""
    if segment.first_seq is None:
        return False  # no rows: the chain ends here (the caller compares with the head)
    if segment.first_seq == state.seq + 1 and segment.start_prev != state.head:
        state.first_bad = segment.first_id
        state.reason = f"entry seq {segment.first_seq}: prev_hash does not match the previous entry"
        return False
    state.entries += segment.entries
    state.seq = segment.seq
    if segment.head is not None:
        state.head = segment.head
    seen.update(segment.marks)
    if segment.reason is not None:
        state.first_bad, state.reason = segment.first_bad, segment.reason
        return False
    return True


# ---------------------------------------------------------------------- the helper process
def request(lo: int, limit: int, upto: int, marks: Mapping[int, str]) -> bytes:
    """The line asking a helper for segment ``lo``: its rows up to seq ``upto`` only."""
    wanted = [seq for seq in marks if lo < seq <= lo + limit]
    return orjson.dumps({"lo": lo, "limit": limit, "upto": upto, "marks": wanted}) + b"\n"


def encode(segment: Segment) -> bytes:
    fields = dataclasses.asdict(segment)
    fields["marks"] = [[seq, value] for seq, value in segment.marks.items()]
    return orjson.dumps(fields) + b"\n"


def decode(line: bytes) -> Segment:
    fields = orjson.loads(line)
    fields["marks"] = {int(seq): str(value) for seq, value in fields["marks"]}
    return Segment(**fields)


async def _serve() -> None:
    import asyncio

    import asyncpg

    loop = asyncio.get_running_loop()
    asks = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(asks), sys.stdin)
    dsn = orjson.loads(await asks.readline())["dsn"]
    conn = await asyncpg.connect(dsn, timeout=10, command_timeout=60)
    out = sys.stdout.buffer
    out.write(b'{"ready":true}\n')
    out.flush()

    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:  # the lines asked, as they come
        while line := await asks.readline():
            queue.put_nowait(orjson.loads(line))
        queue.put_nowait(None)

    pumping = asyncio.ensure_future(pump())

    def fetch(ask: dict[str, Any] | None) -> Any:
        if ask is None:
            return None
        return asyncio.ensure_future(conn.fetch(_HELPER_READ, ask["lo"], ask["limit"]))

    try:
        ask = await queue.get()
        reading = fetch(ask)
        while ask is not None:
            rows = await reading
            # the next read runs while this segment is checked, if it was asked already
            asked_already = not queue.empty()
            following = queue.get_nowait() if asked_already else None
            if asked_already:
                reading = fetch(following)
            if rows and rows[-1][0] > ask["upto"]:
                rows = [row for row in rows if row[0] <= ask["upto"]]
            segment = check_segment(rows, ask["lo"], set(ask["marks"]), columns=True)
            out.write(encode(segment))
            out.flush()
            if not asked_already:
                following = await queue.get()
                reading = fetch(following)
            ask = following
    finally:
        pumping.cancel()
        await conn.close()


#: how a helper's account of its failure starts on its stderr (``audit.verify`` relays it)
FAILED: Final = "audit verify helper failed: "


def describe(exc: BaseException) -> str:
    """What a helper says of its failure: the exception's type, and a database error's
    SQLSTATE, an OS error's errno, an exit's status - never its message, which may quote
    a row, the DSN or the database's name."""
    words = [type(exc).__name__]
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5 and sqlstate.isalnum():
        words.append(f"SQLSTATE {sqlstate}")
    if isinstance(exc, OSError) and isinstance(exc.errno, int):
        words.append(f"errno {exc.errno} {errno.errorcode.get(exc.errno, '')}".rstrip())
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        words.append(f"status {exc.code}")
    return ", ".join(words)


def helper_main() -> None:
    """A helper's life: the DSN on the first line of stdin, then one segment asked per
    line, answered in order, until stdin ends. Garbage collection is off: a helper makes
    no cycles, and the collector otherwise spent about a tenth of its time on the rows.
    If it fails, one line on stderr says how (:func:`describe`), and it exits with 1."""
    import asyncio
    import gc

    gc.disable()
    try:
        asyncio.run(_serve())
    except BaseException as exc:  # any end but the normal one is told
        sys.stderr.write(FAILED + describe(exc) + "\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


#: run by ``python -c`` with the directory holding the ``audit`` package as argument: the
#: package's ``__init__`` (the whole log, ~0.7 s of imports) is not run
BOOTSTRAP: Final = """
import sys, types
sys.path.insert(0, sys.argv[1])
package = types.ModuleType("audit")
package.__path__ = [sys.argv[1] + "/audit"]
sys.modules["audit"] = package
from audit.verify_segment import helper_main
helper_main()
"""
