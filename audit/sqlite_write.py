"""The writes of one SQLite chain transaction in few statements (issue 11).

Each ``con.execute`` on the writer thread is a trip through the ``sqlite3`` module:
a cursor, the statement cache, the bindings, and a ``sqlite3_step`` run with the GIL
released - so one more wait for the GIL, which the event loop's thread holds most of the
time under load. ``executemany`` is one such step per row. A sent batch of ``n``
entries was ``BEGIN``, the head's ``SELECT``, ``n`` entry inserts, one insert per intent
opened, one delete per intent closed, the head's ``UPDATE`` and ``COMMIT``.

Here an insert of many rows is one ``INSERT … VALUES (…), (…), …`` and the deletes of
the intents closed are one ``DELETE … WHERE audit_id IN (…)``, in parts of 1, 2, 4 …
:data:`PART` rows (the binary digits of the count), so that a handful of statement
texts per kind serve every batch size and stay in the connection's statement cache. The
statements still run in the order given, each seeing the rows of those before it (an
intent opened and closed in one batch: inserted, then deleted), so what is written is
what the one-row-at-a-time statements wrote; a failing row fails the transaction, as
before (the caller rolls back; a value too big is still ``sqlite3.DataError``).

For a batch chained beforehand (``append_if_head``) the head's update carries the
check: :func:`conditional_head` makes ``UPDATE audit_head … WHERE id = 1 AND seq = ? AND
hash = ?`` the transaction's first write - the head row is written only if it is still
the head the batch was chained on, and the ``SELECT`` of the head is no longer needed.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from audit.backend import Statement
from audit.batch import DELETE_OPEN, UPDATE_HEAD

#: rows of one multi-row statement at most (a power of two)
PART = 64
#: the head's update, only if the head row is still (seq, hash)
UPDATE_HEAD_IF = f"{UPDATE_HEAD} AND seq = ? AND hash = ?"

_INSERT = re.compile(r"(INSERT INTO [^;]+ VALUES )(\(\?(?:, \?)*\))")
_DELETE_IN = "DELETE FROM audit_open_intent WHERE audit_id IN ({})"


def write(con: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """Run ``statements`` (each with its rows) on ``con``, inside its transaction."""
    for sql, rows in statements:
        if not rows:
            continue
        if not _joinable(sql):
            con.executemany(sql, rows)
            continue
        count, done = len(rows), 0
        while done < count:
            size = min(PART, 1 << ((count - done).bit_length() - 1))
            if size == 1:
                con.execute(sql, rows[done])
            else:
                part = rows[done : done + size]
                con.execute(_joined(sql, size), [v for row in part for v in row])
            done += size


def conditional_head(
    statements: Sequence[Statement], expected: tuple[int, str]
) -> tuple[tuple[Any, ...], list[Statement]] | None:
    """For a batch chained on the head ``expected``: the arguments of
    :data:`UPDATE_HEAD_IF` (the new head, then ``expected``) and the other statements;
    None when ``statements`` do not set the head exactly once."""
    heads = [i for i, (sql, rows) in enumerate(statements) if sql == UPDATE_HEAD and rows]
    if len(heads) != 1 or len(statements[heads[0]][1]) != 1:
        return None
    at = heads[0]
    args = (*statements[at][1][0], expected[0], expected[1])
    return args, [*statements[:at], *statements[at + 1 :]]


@lru_cache(maxsize=64)
def _joinable(sql: str) -> bool:
    return sql == DELETE_OPEN or _INSERT.fullmatch(sql) is not None


@lru_cache(maxsize=256)
def _joined(sql: str, size: int) -> str:
    """``sql`` (a one-row insert, or :data:`DELETE_OPEN`) for ``size`` rows."""
    if sql == DELETE_OPEN:
        return _DELETE_IN.format(", ".join("?" * size))
    match = _INSERT.fullmatch(sql)
    if match is None:  # pragma: no cover - _joinable said it is
        raise ValueError("not a one-row insert")
    return match.group(1) + ", ".join([match.group(2)] * size)
