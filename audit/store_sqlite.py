"""The SQLite backend: one writer connection and one reader connection, each on its own
thread, in WAL mode with ``synchronous=FULL`` (see docs/audit.md for why). The WAL's
checkpoints run off the commit path, on a third thread and connection (:mod:`audit.wal`).

A group commit is one ``BEGIN IMMEDIATE … COMMIT`` on the writer thread; the write lock
it takes is database-wide, so separate processes on one file still form one chain.
A customer's lock across processes (the workers of ``serve --workers N`` on one file) is
a POSIX record lock on one byte of ``<database>.subjects.lock``, at the offset of the
customer's lock key, taken without blocking and retried until the wait runs out - or
none while this process alone writes customers on the file (:mod:`audit.sqlite_locks`).
Errors come out as audit errors: ``sqlite3.DataError`` (a value too big) as the caller's
:class:`ValueRefused`, any other database or file error as :class:`AuditUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from audit.backend import HEAD_SQL, ChainStep, Row, Statement, StepRun
from audit.errors import AuditUnavailable, ValueRefused
from audit.sqlite_locks import SubjectBytes, SubjectLock, open_bytes
from audit.wal import WalCheckpointer, configure_writer, truncate
from audit.worker import Worker

T = TypeVar("T")


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=10000")
    return con


def _connect_writer(path: Path) -> sqlite3.Connection:
    con = _connect(path)
    configure_writer(con)
    return con


class _Tx:
    def __init__(self, backend: SqliteBackend, head: Row, durable: bool) -> None:
        self._backend = backend
        self.head = head
        self._durable = durable
        self._done = False

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._backend._on_writer(self._backend._w_fetchall, sql, params)

    async def commit(self, statements: Sequence[Statement]) -> None:
        try:
            await self._backend._on_writer(self._backend._w_commit, statements, self._durable)
        finally:
            self._release()

    async def rollback(self) -> None:
        try:
            await self._backend._on_writer(self._backend._w_rollback, self._durable)
        finally:
            self._release()

    def _release(self) -> None:
        if not self._done:
            self._done = True
            self._backend._write_lock.release()


class SqliteBackend:
    kind = "sqlite"
    sends_query_columns = False  # generated columns

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer = Worker("audit-sqlite-w")
        self._reader = Worker("audit-sqlite-r")
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._trips_waiting = 0  # one-trip transactions waiting for the write lock
        self._subjects: SubjectBytes | None = None  # the customers' locks, opened on use
        self._checkpointer = WalCheckpointer(path, _connect)

    @classmethod
    async def connect(cls, path: Path) -> SqliteBackend:
        backend = cls(path)
        try:
            backend._w = await backend._on_writer(_connect_writer, path)
            backend._r = await backend._on_reader(_connect, path)
            backend._checkpointer.start()
        except BaseException:
            await backend.close()
            raise
        return backend

    def _on_writer(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return _submit(self._writer, fn, args)

    def _on_reader(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return _submit(self._reader, fn, args)

    def _wcon(self) -> sqlite3.Connection:
        if self._w is None:
            raise sqlite3.OperationalError("audit store closed")
        return self._w

    # --- on the writer thread
    def _w_begin(self, durable: bool = True) -> Row:
        """BEGIN IMMEDIATE and the head row. Not durable: this transaction's commit
        writes the WAL without syncing it (SQLite allows the change between
        transactions only; :meth:`_w_end` restores FULL)."""
        con = self._wcon()
        self._checkpointer.before_write(con)
        if not durable:
            con.execute("PRAGMA synchronous=NORMAL")
        try:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(HEAD_SQL).fetchone()
            if row is None:
                raise sqlite3.OperationalError("audit_head row missing")
        except BaseException:
            self._w_end(durable)
            raise
        return tuple(row)

    def _w_end(self, durable: bool, commit: bool = False) -> None:
        """Commit (or roll back), and restore ``synchronous=FULL`` after a transaction
        that was not durable."""
        con = self._wcon()
        try:
            if commit:
                con.execute("COMMIT")
                self._checkpointer.committed()
            elif con.in_transaction:
                con.execute("ROLLBACK")
        finally:
            if not durable:
                con.execute("PRAGMA synchronous=FULL")

    def _w_fetchall(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return [tuple(r) for r in self._wcon().execute(sql, tuple(params)).fetchall()]

    def _w_commit(self, statements: Sequence[Statement], durable: bool = True) -> None:
        con = self._wcon()
        try:
            for sql, rows in statements:
                if rows:
                    con.executemany(sql, rows)
        except BaseException:
            self._w_end(durable)
            raise
        self._w_end(durable, commit=True)

    def _w_append_if_head(
        self, expected: tuple[int, str], statements: Sequence[Statement], durable: bool
    ) -> bool:
        head = self._w_begin(durable)
        if (int(head[0]), head[1]) != expected:
            self._w_end(durable)
            return False
        self._w_commit(statements, durable)
        return True

    def _w_chain(self, step: ChainStep, durable: bool) -> None:
        """A whole chain transaction on the writer thread: begin, ``step``'s queries,
        its statements, commit."""
        head = self._w_begin(durable)
        try:
            run = StepRun(step, head)
            query = run.query(None)
            while query is not None:
                query = run.query(self._w_fetchall(*query))
        except BaseException:
            self._w_end(durable)
            raise
        self._w_commit(run.statements, durable)

    def _w_rollback(self, durable: bool = True) -> None:
        self._w_end(durable)

    def _w_run(self, statements: Sequence[Statement]) -> None:
        self._wcon().execute("BEGIN IMMEDIATE")
        self._w_commit(statements)

    def _r_fetchall(self, sql: str, params: Sequence[Any]) -> list[Row]:
        if self._r is None:
            raise sqlite3.OperationalError("audit store closed")
        return self._r.execute(sql, tuple(params)).fetchall()

    # --- the Backend protocol
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._on_reader(self._r_fetchall, sql, params)

    async def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        return await self._on_reader(self._r_fetchall, sql, params)

    async def run(self, statements: Sequence[Statement]) -> None:
        async with self._write_lock:
            await self._on_writer(self._w_run, statements)

    async def chain_tx(self, *, durable: bool = True) -> _Tx:
        await self._write_lock.acquire()
        try:
            head = await self._on_writer(self._w_begin, durable)
        except BaseException:
            self._write_lock.release()
            raise
        return _Tx(self, head, durable)

    def chain(self, step: ChainStep, *, durable: bool = True) -> Awaitable[None]:
        """One trip to the writer thread for the whole transaction."""
        return self._one_trip(self._w_chain, step, durable)

    def append_if_head(
        self, expected: tuple[int, str], statements: Sequence[Statement], *, durable: bool
    ) -> Awaitable[bool]:
        """One trip to the writer thread: begin, check the head, write, commit."""
        return self._one_trip(self._w_append_if_head, expected, statements, durable)

    def _one_trip(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """A whole transaction in one call on the writer thread. The write lock keeps it
        out of a transaction of several calls (:meth:`chain_tx`): while one holds the
        lock, it waits its turn. With the lock free it is queued at once, without taking
        it (no task, no lock, no coroutines: issue 11) - the thread runs calls in order,
        so a transaction begun after it runs after it."""
        if not self._write_lock.locked() and not self._trips_waiting:
            return self._on_writer(fn, *args)
        return self._locked_trip(fn, *args)

    async def _locked_trip(self, fn: Callable[..., T], *args: Any) -> T:
        # counted while it waits, so that a trip asked for later (with the lock just
        # released, before this one took it) queues behind it, in the order asked
        self._trips_waiting += 1
        try:
            async with self._write_lock:
                return await self._on_writer(fn, *args)
        finally:
            self._trips_waiting -= 1

    def subject_lock(self, key: int, timeout: float) -> SubjectLock:
        """The customer's lock among processes (:mod:`audit.sqlite_locks`); a class, not
        an ``asynccontextmanager``: no async generator per change (issue 11)."""
        return SubjectLock(self, key, timeout)

    def _subject_bytes(self) -> SubjectBytes:
        """This process's customer locks on the file, opened on first use."""
        if self._subjects is None:
            if self._writer.stopped:
                raise AuditUnavailable("the audit store is closed")
            self._subjects = open_bytes(self._path)
        return self._subjects

    @asynccontextmanager
    async def job_lock(self, key: int) -> AsyncIterator[bool]:
        """An exclusive ``flock`` on ``<database>.job-<key>.lock`` beside the database
        file, without waiting: processes on one file run the job one at a time."""
        path = self._path.with_name(f"{self._path.name}.job-{key:x}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditUnavailable(f"the audit store failed ({type(exc).__name__})") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def lock_use(self) -> tuple[int, int]:
        return 0, 0  # no lock connections

    async def close(self) -> None:
        if self._subjects is not None:
            self._subjects.close()
            self._subjects = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._checkpointer.close)
        if self._w is not None:
            with contextlib.suppress(sqlite3.Error):  # the WAL then stays for the next one
                await self._writer.submit(truncate, self._w)
        for con, worker in ((self._w, self._writer), (self._r, self._reader)):
            if con is not None:
                await worker.submit(con.close)
            worker.stop()
        self._w = self._r = None


def _submit(worker: Worker, fn: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
    """``fn(*args)`` queued on ``worker``; after ``close``, a future that fails with
    AuditUnavailable (the error reaches whoever awaits it, as every error of the store)."""
    if worker.stopped:
        closed: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        closed.set_exception(AuditUnavailable("the audit store is closed"))
        return closed
    return worker.submit(_translated, fn, *args)


def _translated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a store thread, its errors as audit errors."""
    try:
        return fn(*args)
    except sqlite3.DataError as exc:
        raise ValueRefused(
            f"the audit store refuses a value of this entry ({type(exc).__name__})"
        ) from exc
    except (sqlite3.Error, OSError) as exc:
        raise AuditUnavailable(f"the audit store failed ({type(exc).__name__})") from exc
