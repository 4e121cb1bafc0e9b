"""The writes of one chain transaction as one PostgreSQL statement (issue 11).

A batch's writes - the subject keys it creates, its entries, the intents it opens and
closes, a checkpoint, the head - were one statement each (an ``executemany``), every one
a round trip and a pass through asyncpg. :func:`one_statement` makes them one: each table's
rows go as arrays (``unnest``) into a data-modifying ``WITH`` clause, the head's update
first. Inside the full way's transaction (head row locked) that is all; for a batch
chained beforehand (``append_if_head``) the head's update carries the condition - the
head row still ``expected`` - and every other write runs only if it matched, so the whole
append is one statement in its own transaction: one round trip instead of
``BEGIN … COMMIT`` around five or six. A commit that need not wait for the disk sets
``synchronous_commit`` off for its own transaction (``set_config(…, true)``; what counts
is the setting in effect when the transaction commits).

The parts of one statement share one snapshot and cannot see each other's rows, so a
batch whose writes touch a row twice - an intent opened and closed in the same batch, an
erasure's destroyed keys (which may include one inserted by the same batch) - or that has
statements other than these (an expiry's, :mod:`audit.retention`) is not made one:
:func:`one_statement` returns None and the store runs the statements one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from audit.backend import INSERT_ENTRY, INSERT_ENTRY_COLUMNS, QUERY_COLUMNS, Statement
from audit.batch import DELETE_OPEN, INSERT_CHECKPOINT, INSERT_KEY, INSERT_OPEN, UPDATE_HEAD

#: the inserts made one: (table and columns, each column's array type)
_INSERTS: dict[str, tuple[str, tuple[str, ...]]] = {
    INSERT_KEY: (
        "audit_subject_key (key_id, system, customer_id, wrapped, kek_id, created_at,"
        " expires_at)",
        ("text", "text", "text", "bytea", "text", "text", "text"),
    ),
    INSERT_ENTRY: ("audit_entry (seq, body, prev_hash, hash)", ("bigint", "json", "text", "text")),
    INSERT_ENTRY_COLUMNS: (
        f"audit_entry (seq, body, prev_hash, hash, {', '.join(QUERY_COLUMNS)})",
        ("bigint", "json", "text", "text") + ("text",) * len(QUERY_COLUMNS),
    ),
    INSERT_OPEN: ("audit_open_intent (audit_id, seq, created_at)", ("text", "bigint", "text")),
    INSERT_CHECKPOINT: (
        "audit_checkpoint (seq, hash, time, public_key, signature)",
        ("bigint", "text", "text", "text", "text"),
    ),
}
_KNOWN = {*_INSERTS, DELETE_OPEN, UPDATE_HEAD}


def one_statement(
    statements: Sequence[Statement],
    *,
    expected: tuple[int, str] | None = None,
    durable: bool = True,
) -> tuple[str, list[Any]] | None:
    """(sql, arguments) writing ``statements`` in one statement, or None when they cannot
    be (see the module's docstring). With ``expected`` (seq, hash), every write is made
    only if the head row is still that one; the statement's one value is 1 if it wrote,
    else 0."""
    present = [(sql, rows) for sql, rows in statements if rows]
    kinds = tuple(sql for sql, _ in present)
    if (
        len(set(kinds)) != len(kinds)
        or not set(kinds) <= _KNOWN
        or kinds.count(UPDATE_HEAD) != 1
    ):
        return None
    by_kind = dict(present)
    if len(by_kind[UPDATE_HEAD]) != 1:
        return None
    if DELETE_OPEN in by_kind and INSERT_OPEN in by_kind:
        opened = {row[0] for row in by_kind[INSERT_OPEN]}
        if any(row[0] in opened for row in by_kind[DELETE_OPEN]):
            return None
    args: list[Any] = [*by_kind[UPDATE_HEAD][0]]
    if expected is not None:
        args += [expected[0], expected[1]]
    for sql in kinds:
        rows = by_kind[sql]
        if sql == DELETE_OPEN:
            args.append([row[0] for row in rows])
        elif sql != UPDATE_HEAD:
            args += [list(column) for column in zip(*rows, strict=True)]
    return _sql(tuple(k for k in kinds if k != UPDATE_HEAD), expected is not None, durable), args


def unnest_insert(sql: str) -> str:
    """The insert ``sql`` (one of the inserts made one) for many rows as one statement,
    its arguments one array per column."""
    table, types = _INSERTS[sql]
    arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(types, 1))
    return f"INSERT INTO {table} SELECT * FROM unnest({arrays})"  # noqa: S608 - fixed names


@lru_cache(maxsize=64)
def _sql(kinds: tuple[str, ...], conditional: bool, durable: bool) -> str:
    """The statement for a batch writing ``kinds`` (besides the head), its arguments in
    the order :func:`one_statement` lists them."""
    n = 4
    head = (
        "UPDATE audit_head SET seq = $1, hash = $2, checkpoint_seq = $3, checkpoint_at = $4"
        " WHERE id = 1"
    )
    if conditional:
        head += " AND seq = $5 AND hash = $6"
        n = 6
    parts = [f"head AS ({head} RETURNING 1)"]
    only = " WHERE EXISTS (SELECT FROM head)" if conditional else ""
    for i, sql in enumerate(kinds):
        if sql == DELETE_OPEN:
            n += 1
            also = " AND EXISTS (SELECT FROM head)" if conditional else ""
            parts.append(
                f"w{i} AS (DELETE FROM audit_open_intent"  # noqa: S608 - fixed text, values bound
                f" WHERE audit_id = ANY(${n}::text[]){also})"
            )
            continue
        table, types = _INSERTS[sql]
        arrays = ", ".join(f"${n + j + 1}::{t}[]" for j, t in enumerate(types))
        n += len(types)
        # fixed table and column names (_INSERTS), values bound
        parts.append(f"w{i} AS (INSERT INTO {table} SELECT * FROM unnest({arrays}){only})")  # noqa: S608
    written = "(SELECT count(*) FROM head)"
    if not durable:  # this transaction's commit does not wait for the WAL flush
        written += ", set_config('synchronous_commit', 'off', true)"
    return "WITH " + ", ".join(parts) + " SELECT " + written
