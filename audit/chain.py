"""The hash chain: the canonical encoding of an entry and the pure verification loop.

An entry's body is canonical JSON (sorted keys, no spaces, ASCII only). Its hash is
``sha256(f"{seq}\\n{prev_hash}\\n{body}")`` in hex; the first entry's ``prev_hash`` is
64 zeros. The body holds every field of the entry, ciphertexts included; the columns the
store indexes are generated from the body by the database, so they cannot drift from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from audit.backend import QUERY_COLUMNS
from common.canonical import encoder

GENESIS: Final = "0" * 64

# ASCII; NaN and infinities are not JSON: neither store's JSON functions read them
_encode = encoder(ascii_only=True)


def canonical(entry: Mapping[str, Any]) -> str:
    """The canonical JSON text of an entry body."""
    return _encode(entry)


def query_values(body: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The query columns of an entry with ``body`` (:data:`QUERY_COLUMNS`), as the
    body's ``->>`` gives them: a string member as it is, a missing or null one as None,
    any other value as its canonical JSON text (the log's bodies hold only
    strings or null there)."""
    values = tuple(map(body.get, QUERY_COLUMNS))
    if all(v is None or type(v) is str for v in values):
        return values
    return tuple(map(_query_value, values))


def _query_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # a StrEnum of the vocabulary: its text
        return str.__str__(value)
    return _encode(value)


def entry_hash(seq: int, prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{seq}\n{prev_hash}\n{body}".encode()).hexdigest()


@dataclass
class ChainState:
    """Where a verification pass stands; fed chunk after chunk of rows in seq order."""

    seq: int = 0
    head: str = GENESIS
    entries: int = 0
    first_bad: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def body_audit_id(body: str) -> str | None:
    try:
        value = json.loads(body).get("audit_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def check_rows(
    state: ChainState,
    rows: Iterable[Sequence[Any]],
    marks: Mapping[int, str] | None = None,
    on_mark: Callable[[int, str], None] | None = None,
) -> bool:
    """Check ``(seq, body, prev_hash, hash)`` rows in order; stop at the first break.

    ``marks`` are seqs whose recomputed hash the caller wants (the checkpoints);
    ``on_mark(seq, hash)`` receives them. Returns False once a break is found.
    """
    if state.reason is not None:
        return False
    seq, head, count = state.seq, state.head, state.entries
    sha = hashlib.sha256
    for row in rows:
        r_seq, body, prev, stored = row[0], row[1], row[2], row[3]
        if r_seq != seq + 1:
            state.first_bad = body_audit_id(body)
            state.reason = f"entry seq {r_seq} follows seq {seq}: " + (
                "entries missing" if r_seq > seq + 1 else "rows out of order"
            )
            break
        if prev != head:
            state.first_bad = body_audit_id(body)
            state.reason = f"entry seq {r_seq}: prev_hash does not match the previous entry"
            break
        computed = sha(f"{r_seq}\n{prev}\n{body}".encode()).hexdigest()
        if computed != stored:
            state.first_bad = body_audit_id(body)
            state.reason = f"entry seq {r_seq}: hash does not match its content"
            break
        seq, head, count = r_seq, computed, count + 1
        if marks is not None and on_mark is not None and r_seq in marks:
            on_mark(r_seq, computed)
    state.seq, state.head, state.entries = seq, head, count
    return state.reason is None
