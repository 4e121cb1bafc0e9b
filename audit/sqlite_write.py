"""The head check of a SQLite append chained beforehand, in the head's own update
(issue 11).

``append_if_head`` writes a batch chained on the head this process last wrote, only if
the head row is still that one. It was ``BEGIN IMMEDIATE``, the head's ``SELECT``, the
comparison in Python, the batch's statements (the head's ``UPDATE`` last) and
``COMMIT``. Here the head's update carries the check -
``UPDATE audit_head … WHERE id = 1 AND seq = ? AND hash = ?`` (:data:`UPDATE_HEAD_IF`),
the transaction's first write: it changes one row if the head is still the expected
one, none if another process moved it (the transaction is then rolled back, nothing
written, as before). One statement less per sent batch on the writer thread, each a
``sqlite3_step`` with the GIL released and taken back. The head row has no triggers, so
its update may come first: what is committed is what the statements in their given
order wrote.

Measured and not kept (docs/performance.md, "SQLite writer thread"): one multi-row
``INSERT … VALUES (…), (…)`` per kind instead of ``executemany`` - fewer steps, but
SQLite's own work per row grew (14.2 → 18.7 µs a row for batches of 8, one thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.backend import Statement
from audit.batch import UPDATE_HEAD

#: the head's update, only if the head row is still (seq, hash)
UPDATE_HEAD_IF = f"{UPDATE_HEAD} AND seq = ? AND hash = ?"


def conditional_head(
    statements: Sequence[Statement], expected: tuple[int, str]
) -> tuple[tuple[Any, ...], list[Statement]] | None:
    """For a batch chained on the head ``expected``: the arguments of
    :data:`UPDATE_HEAD_IF` (the new head, then ``expected``) and the other statements,
    in their order; None when ``statements`` do not set the head exactly once."""
    heads = [i for i, (sql, rows) in enumerate(statements) if sql == UPDATE_HEAD and rows]
    if len(heads) != 1 or len(statements[heads[0]][1]) != 1:
        return None
    at = heads[0]
    args = (*statements[at][1][0], expected[0], expected[1])
    return args, [*statements[:at], *statements[at + 1 :]]
