"""What the audit log needs from a database; SQLite and PostgreSQL implement it.

SQL is written once with ``?`` placeholders; the PostgreSQL backend numbers them.
The chain transaction holds the database-wide append lock from ``chain_tx()`` to
``commit``/``rollback``: SQLite's write lock (``BEGIN IMMEDIATE``), or PostgreSQL's row
lock on the head row (``SELECT … FOR UPDATE``). Every process appends under it, so the
chain stays one chain whatever the number of replicas. ``append_if_head`` is the same
transaction in one go, for a batch chained beforehand on the head this process last
wrote: it commits only if the head row is still that one (PostgreSQL: one statement
whose ``UPDATE`` of the head row, under that row's lock, carries the condition and
gates every other write, :mod:`audit.pg_write`).

``durable=False`` commits without waiting for the disk (SQLite: that transaction at
``synchronous=NORMAL``; PostgreSQL: ``synchronous_commit`` off for it): a crash of the
machine (SQLite) or of the server (PostgreSQL) may lose it, and only it and later such
transactions - the next durable commit syncs everything written before it.

``chain(step)`` is the whole chain transaction in one go: the store begins it, takes the
append lock and the head row, and runs ``step(head)``, a generator that yields the queries
it needs (each answered with its rows) and returns the statements to commit. SQLite runs
all of it in one trip to its writer thread (no hop per query: issue 11); PostgreSQL
answers the queries in turn on the transaction's connection.

Every method raises audit errors only: ``ValueRefused`` for a value the store refuses,
``AuditUnavailable`` for any other failure of the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Protocol

Row = tuple[Any, ...]
# One statement and the parameter rows to run it with (``executemany``).
Statement = tuple[str, Sequence[Sequence[Any]]]

#: a query a chain step asks for: (sql, parameters); answered with its rows
Query = tuple[str, Sequence[Any]]
#: the work of one chain transaction: given the head row, yields its queries and returns
#: the statements to commit
ChainStep = Callable[[Row], Generator[Query, list[Row], Sequence[Statement]]]


class StepRun:
    """One run of a :data:`ChainStep`, for a backend to drive: ``query(rows)`` gives the
    step the answer to its last query (``None`` first) and returns its next query, or
    ``None`` once the step is done and ``statements`` holds what to commit."""

    __slots__ = ("_work", "statements")

    def __init__(self, step: ChainStep, head: Row) -> None:
        self._work = step(head)
        self.statements: Sequence[Statement] = ()

    def query(self, rows: list[Row] | None) -> Query | None:
        try:
            return self._work.send(rows)  # type: ignore[arg-type]
        except StopIteration as done:
            self.statements = done.value
            return None

INSERT_ENTRY = "INSERT INTO audit_entry (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)"
#: the query columns of ``audit_entry``: each the body's top-level member of that name
#: (SQLite: generated columns; PostgreSQL: sent by the writer, migration 0006)
QUERY_COLUMNS: Final = ("audit_id", "time", "system", "customer_id", "actor", "action", "phase",
                        "outcome", "intent_id", "problem_code", "key_id")  # fmt: skip
#: an entry with its query columns (PostgreSQL): the row is (seq, body, prev_hash, hash,
#: *:func:`audit.chain.query_values` of the body)
INSERT_ENTRY_COLUMNS: Final = (
    f"INSERT INTO audit_entry (seq, body, prev_hash, hash, {', '.join(QUERY_COLUMNS)})"  # noqa: S608 - fixed names
    f" VALUES ({', '.join('?' * (4 + len(QUERY_COLUMNS)))})"
)
HEAD_SQL = "SELECT seq, hash, checkpoint_seq, checkpoint_at FROM audit_head WHERE id = 1"



class ChainTx(Protocol):
    head: Row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def commit(self, statements: Sequence[Statement]) -> None: ...

    async def rollback(self) -> None: ...


class LockLease(Protocol):
    """A lock across processes, held: ``lost`` once the session holding it ended."""

    @property
    def lost(self) -> bool: ...


class Backend(Protocol):
    kind: str
    #: the entries' rows carry their query columns (:data:`INSERT_ENTRY_COLUMNS`):
    #: PostgreSQL from migration 0006 on; SQLite generates them
    sends_query_columns: bool

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        """As :meth:`fetchall`, the rows as the driver gives them (indexable, not
        converted to tuples): for reads of many rows, such as verification."""
        ...

    async def run(self, statements: Sequence[Statement]) -> None: ...

    async def chain_tx(self, *, durable: bool = True) -> ChainTx: ...

    def chain(self, step: ChainStep, *, durable: bool = True) -> Awaitable[None]:
        """Under the append lock: run ``step`` on the head row, answering its queries,
        then its statements, and commit; roll back if anything fails (the failure is
        raised, ``step``'s own errors as they are)."""
        ...

    def append_if_head(
        self, expected: tuple[int, str], statements: Sequence[Statement], *, durable: bool
    ) -> Awaitable[bool]:
        """Under the append lock: if the head row's (seq, hash) is ``expected``, run
        ``statements`` and commit (True); else change nothing (False)."""
        ...

    def subject_lock(
        self, key: int, timeout: float
    ) -> AbstractAsyncContextManager[LockLease | None]:
        """Hold the lock ``key`` across processes (LockTimeout after ``timeout`` s);
        what it yields, if anything, says whether the lock was lost meanwhile."""
        ...

    def job_lock(self, key: int) -> AbstractAsyncContextManager[bool]:
        """Try to hold the lock ``key`` across processes for a job, without waiting:
        yields whether it is held (False: another process runs the job now)."""
        ...

    def lock_use(self) -> tuple[int, int]:
        """(lock connections held now, the most there can be); (0, 0) without any."""
        ...

    async def close(self) -> None: ...
