"""SQLite: the WAL's checkpoints run off the commit path (audit.wal), on real files.

A commit no longer checkpoints (the WAL passes SQLite's default mark of 1,000 pages);
the background keeps the WAL bounded without it; a killed process loses no committed
entry; a clean close empties the WAL, waiting a little for another process's reader.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import audit.wal
from audit import AuditLog, Outcome, upgrade
from audit.store_sqlite import SqliteBackend
from tests.audit.conftest import crash_writer, make_intent, printed_then_killed

PAGE = 4096


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _db_size(path: Path) -> int:
    return path.stat().st_size


def _checkpointer(log: AuditLog) -> audit.wal.WalCheckpointer:
    backend = log._backend  # the store's own checkpointer, to wait for it
    assert isinstance(backend, SqliteBackend)
    return backend._checkpointer


async def test_a_commit_does_not_checkpoint(
    db: Path, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the background paused, the WAL grows past SQLite's default auto-checkpoint
    mark (1,000 pages): no commit copied it into the database file."""
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 3600.0)
    log = await AuditLog.open(_url(db), **keys)
    try:
        for n in range(3000):
            await log.record(make_intent(str(1000 + n % 40)), Outcome("applied"))
            if _wal_size(db) > 2000 * PAGE:
                break
        assert _wal_size(db) > 2000 * PAGE
        assert _checkpointer(log).checkpoints == 0
        assert (await log.verify()).ok
    finally:
        await log.close()


async def _wait_for_checkpoint(checkpointer: audit.wal.WalCheckpointer, before: int) -> None:
    """Until a pass that began after the round's last commit has run: one counted after
    the commit's wake-up (``_wrote``) was seen cleared. A pass counted during the round
    (``before`` moved) is not enough: under load the round's last commits come after it,
    and the next round would write while the pass they wake is still copying."""
    baseline = before
    for _ in range(6000):  # 60 s at most
        if checkpointer._wrote.is_set():  # the pass for the last commits has not begun
            baseline = checkpointer.checkpoints
        elif checkpointer.checkpoints != baseline:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no background checkpoint in 60 s")


async def _rounds(path: Path, keys: dict[str, bytes], *, background: bool) -> list[int]:
    """12 rounds of 60 appends, each followed by a background checkpoint when
    ``background``: the WAL file's size after each round."""
    log = await AuditLog.open(_url(path), **keys)
    checkpointer = _checkpointer(log)
    sizes = []
    try:
        for _ in range(12):
            before = checkpointer.checkpoints
            for n in range(60):
                await log.record(make_intent(str(2000 + n)), Outcome("applied"))
            sizes.append(_wal_size(path))
            if background:
                await _wait_for_checkpoint(checkpointer, before)
        assert (await log.verify()).entries == 12 * 60
    finally:
        await log.close()
    assert checkpointer.failures == 0
    assert (checkpointer.checkpoints > 0) is background
    return sizes


async def test_the_background_keeps_the_wal_bounded(
    tmp_path: Path, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No auto-checkpoint at all (backstop off): without the background the WAL grows
    with every round; with it, it stays a fraction of that."""
    monkeypatch.setattr(audit.wal, "BACKSTOP_PAGES", 0)
    unbounded, bounded = tmp_path / "paused.db", tmp_path / "background.db"
    for path in (unbounded, bounded):
        await upgrade(_url(path))
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 3600.0)
    grown = await _rounds(unbounded, keys, background=False)
    assert grown == sorted(grown) and grown[-1] > 8 * grown[0]  # the control: it only grows
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 0.01)
    sizes = await _rounds(bounded, keys, background=True)
    assert max(sizes) <= grown[-1] / 3, (sizes, grown)


async def test_a_killed_writer_loses_no_committed_entry(db: Path, keys: dict[str, bytes]) -> None:
    """A process appending with checkpoints every 5 ms, killed (SIGKILL, no close):
    every outcome id it printed (``record`` had returned) is in the store, and the chain holds."""
    empty = _db_size(db)
    printed = await printed_then_killed(await crash_writer(_url(db), keys, 0, "wal"), 400)
    assert _wal_size(db) > 0  # not closed: the WAL is still there
    assert _db_size(db) > empty  # background checkpoints copied pages in
    log = await AuditLog.open(_url(db), **keys)
    try:
        for audit_id in printed:
            assert (await log.get(audit_id))["phase"] == "outcome"
        report = await log.verify()
        assert report.ok
        assert report.entries >= len(printed)
    finally:
        await log.close()


async def test_a_clean_close_waits_for_a_reader_and_empties_the_wal(
    db: Path, keys: dict[str, bytes]
) -> None:
    """Another connection (another worker) is in a read transaction when the log
    closes and ends it soon after: the close's TRUNCATE waits for it and empties the
    WAL. (SQLite's own checkpoint when its last connection closes does not wait: the
    WAL would stay, and nothing would copy it until the next writer.)"""
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        log = await AuditLog.open(_url(db), **keys)
        try:
            for n in range(50):
                await log.record(make_intent(str(3000 + n)), Outcome("applied"))
            other.execute("BEGIN")
            assert other.execute("SELECT count(*) FROM audit_entry").fetchone()[0] == 50
            closing = asyncio.ensure_future(log.close())
            await asyncio.sleep(0.3)  # the close is waiting (2 s at most)
            other.execute("COMMIT")
            await closing
        finally:
            await log.close()
        assert _wal_size(db) == 0  # before `other` closes: the TRUNCATE emptied it
        assert other.execute("SELECT count(*) FROM audit_entry").fetchone()[0] == 50
    finally:
        other.close()


async def test_a_close_while_another_reads_leaves_the_wal(
    db: Path, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other connection in a read transaction: the TRUNCATE gives up after its wait,
    the close completes, and nothing committed is lost."""
    monkeypatch.setattr(audit.wal, "CLOSE_WAIT_MS", 50)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        log = await AuditLog.open(_url(db), **keys)
        try:
            await log.record(make_intent("4000"), Outcome("applied"))
            other.execute("BEGIN")
            assert other.execute("SELECT count(*) FROM audit_entry").fetchone()[0] == 1
            await log.record(make_intent("4001"), Outcome("applied"))
        finally:
            await log.close()
        assert _wal_size(db) > 0
        other.execute("COMMIT")
        assert other.execute("SELECT count(*) FROM audit_entry").fetchone()[0] == 2
    finally:
        other.close()


class _CloseLandsLate(threading.Event):
    """The checkpointer's stop event, with ``close()`` landing just after a pass decided
    to run (before it clears its wake-up): stop and the wake-up are set then."""

    def __init__(self, wrote: threading.Event) -> None:
        super().__init__()
        self._wrote = wrote

    def wait(self, timeout: float | None = None) -> bool:
        if self.is_set():
            return True
        self.set()  # what close() does, in its order
        self._wrote.set()
        return False


async def test_a_close_during_a_pass_stops_the_thread(db: Path) -> None:
    """A close that lands as a pass starts still ends the thread (it waited for ever for
    a wake-up it had cleared: the process hung in close, seen in a bench run)."""
    checkpointer = audit.wal.WalCheckpointer(db, lambda path: sqlite3.connect(path))
    checkpointer._stop = _CloseLandsLate(checkpointer._wrote)
    checkpointer.committed()
    checkpointer.start()
    await asyncio.to_thread(checkpointer._thread.join, 10)
    assert not checkpointer._thread.is_alive()
    assert checkpointer.checkpoints == 1


class _Clock:
    """The checkpointer's clock: ``writer`` when read on the test's thread (its commits
    and transaction starts), ``checkpointer`` on the checkpoint thread."""

    def __init__(self, writer: float, checkpointer: float) -> None:
        self.writer, self.checkpointer = writer, checkpointer

    def __call__(self) -> float:
        if threading.current_thread().name == "audit-sqlite-ckpt":
            return self.checkpointer
        return self.writer


class _Watched(threading.Event):
    """The checkpointer's commit wake-up; ``waiting`` is set once a pass waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


class _Writer:
    """A WAL file written by the test on a real connection, a checkpointer beside it
    (not started) and the order of the commits and the passes in ``events``."""

    def __init__(self, path: Path, clock: _Clock, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("CREATE TABLE t (n INTEGER)")
        catch_up = audit.wal._catch_up

        def recorded(con: sqlite3.Connection, *between: Callable[[], None]) -> bool:
            self.events.append("checkpoint")
            return catch_up(con, *between)

        passive = audit.wal._passive

        def counted(con: sqlite3.Connection) -> tuple[int, ...]:
            self.events.append("pass")
            return passive(con)

        monkeypatch.setattr(audit.wal, "_catch_up", recorded)
        monkeypatch.setattr(audit.wal, "_passive", counted)
        self.checkpointer = audit.wal.WalCheckpointer(
            path, lambda p: sqlite3.connect(p, isolation_level=None, check_same_thread=False)
        )
        # set after (the code before had no clock): made now, on the test's clock
        self.checkpointer._clock, self.checkpointer._last_pass = clock, clock.writer
        self.checkpointer._commit = _Watched()

    def commit(self, name: str) -> None:
        self.con.execute("BEGIN IMMEDIATE")
        self.con.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(50)])
        self.con.execute("COMMIT")
        self.events.append(name)
        self.checkpointer.committed()

    async def passes(self, count: int) -> None:
        for _ in range(1000):  # 10 s at most
            if self.checkpointer.checkpoints >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not {count} checkpoints: {self.events}")

    def close(self) -> None:
        self.checkpointer.close()
        self.con.close()
        assert self.checkpointer.failures == 0


async def _waits_for_a_commit(writer: _Writer) -> bool:
    watched = writer.checkpointer._commit
    assert isinstance(watched, _Watched)
    return await asyncio.to_thread(watched.waiting.wait, 10)


async def test_a_due_checkpoint_starts_right_after_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer busy (its last commit 0 s ago on the checkpointer's clock): the due
    pass waits for the next commit (for ever here) and starts after it, not between two."""
    monkeypatch.setattr(audit.wal, "COMMIT_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 0.0)  # the code before: at once
    writer = _Writer(tmp_path / "busy.db", _Clock(100.0, 100.0), monkeypatch)
    try:
        writer.commit("commit 1")
        writer.checkpointer.start()
        assert await _waits_for_a_commit(writer), writer.events
        assert writer.checkpointer.checkpoints == 0
        writer.commit("commit 2")
        await writer.passes(1)
        assert writer.events == ["commit 1", "commit 2", "checkpoint", "pass"]
    finally:
        writer.close()


async def test_a_due_checkpoint_of_an_idle_writer_starts_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer idle (its last commit 2 h ago on the checkpointer's clock, and the
    checkpointer made then): the pass is due (an interval of 1 h since) and starts at
    once, without waiting for a commit. The code before counted the interval from the
    commit that woke it: an hour."""
    monkeypatch.setattr(audit.wal, "COMMIT_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 3600.0)
    writer = _Writer(tmp_path / "idle.db", _Clock(100.0, 7300.0), monkeypatch)
    try:
        writer.commit("commit 1")
        writer.checkpointer.start()
        await writer.passes(1)
        assert writer.events == ["commit 1", "checkpoint", "pass"]
        watched = writer.checkpointer._commit
        assert isinstance(watched, _Watched) and not watched.waiting.is_set()
    finally:
        writer.close()


async def test_a_due_checkpoint_waits_for_a_transaction_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last commit 1 s ago but a transaction begun since (``before_write``): the
    writer is busy, and the pass starts after that transaction's commit."""
    monkeypatch.setattr(audit.wal, "COMMIT_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 0.0)
    clock = _Clock(100.0, 101.0)
    writer = _Writer(tmp_path / "begun.db", clock, monkeypatch)
    try:
        writer.commit("commit 1")
        clock.writer = 101.0
        writer.checkpointer.before_write(writer.con)
        writer.checkpointer.start()
        assert await _waits_for_a_commit(writer), writer.events
        writer.commit("commit 2")
        await writer.passes(1)
        assert writer.events == ["commit 1", "commit 2", "checkpoint", "pass"]
    finally:
        writer.close()


async def test_a_pass_that_left_frames_is_followed_by_one_after_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader holds the first pass back (it copies only what the reader sees): the
    pass after it waits for the writer's next commit instead of following at once, and
    copies everything once the reader is gone - the writer thread has nothing left to do."""
    monkeypatch.setattr(audit.wal, "COMMIT_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 0.0)
    path = tmp_path / "held.db"
    writer = _Writer(path, _Clock(100.0, 100.0), monkeypatch)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        writer.commit("commit 1")
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 50
        writer.commit("commit 2")
        writer.checkpointer.start()
        assert await _waits_for_a_commit(writer), writer.events
        watched = writer.checkpointer._commit
        assert isinstance(watched, _Watched)
        watched.waiting.clear()
        writer.commit("commit 3")
        assert await _waits_for_a_commit(writer), writer.events  # after the first pass
        assert writer.events == ["commit 1", "commit 2", "commit 3", "checkpoint", "pass"]
        reader.execute("COMMIT")
        writer.commit("commit 4")
        await writer.passes(1)
        assert writer.events[5:] == ["commit 4", "pass"]
        assert not writer.checkpointer._behind
    finally:
        reader.close()
        writer.close()


def _wal_frames(path: Path) -> int:
    """The WAL's frames (``mxFrame``, the wal-index header in ``-shm``): 0 after a restart."""
    shm = path.with_name(path.name + "-shm")
    with shm.open("rb") as f:
        return int.from_bytes(f.read(20)[16:20], sys.byteorder)


async def test_the_wal_restarts_under_commits_back_to_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that begins its next transaction right after each commit (the gateway
    under load): the WAL starts again from its beginning, i.e. a pass copied every frame
    and the writer's next transaction began after it, again and again. Before, the pass
    (timed right after a commit) always ended inside the next transaction, which had
    begun with frames left to copy: the WAL only grew, up to the backstop."""
    monkeypatch.setattr(audit.wal, "COMMIT_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(audit.wal, "RESTART_WAIT_SECONDS", 3600.0, raising=False)
    path = tmp_path / "steady.db"
    writer = _Writer(path, _Clock(100.0, 100.0), monkeypatch)
    row = b"x" * 400
    commits, frames = 300, []

    def back_to_back() -> None:
        for _n in range(commits):
            writer.checkpointer.before_write(writer.con)
            writer.con.execute("BEGIN IMMEDIATE")
            writer.con.executemany("INSERT INTO t VALUES (?)", [(row,)] * 20)
            writer.con.execute("COMMIT")
            writer.checkpointer.committed()
            frames.append(_wal_frames(path))

    try:
        writer.checkpointer.start()
        await asyncio.to_thread(back_to_back)
    finally:
        writer.close()
    restarts = sum(1 for a, b in itertools.pairwise(frames) if b < a)
    passes = writer.events.count("checkpoint")
    # each commit writes 3 frames: a WAL that restarts after most passes stays small
    assert passes >= 10 and restarts >= passes // 2, (passes, restarts, max(frames))
    assert max(frames) <= 3 * commits // 5, (passes, restarts, max(frames))


async def test_the_writer_waits_for_a_catch_up_pass_a_bounded_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up pass that started after the writer's commit and does not end (held
    here): the writer's next transaction waits for it no longer than
    ``RESTART_WAIT_SECONDS`` and begins while the pass is still under way. That pass
    does not end the catch-up (the transaction began with frames left to copy): one
    more pass follows the next commit, and nothing is left waiting."""
    monkeypatch.setattr(audit.wal, "COMMIT_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(audit.wal, "INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(audit.wal, "RESTART_WAIT_SECONDS", 0.05)
    path = tmp_path / "held-pass.db"
    writer = _Writer(path, _Clock(100.0, 100.0), monkeypatch)
    reader = sqlite3.connect(path, isolation_level=None)
    passive, held, release = audit.wal._passive, threading.Event(), threading.Event()

    def slow(con: sqlite3.Connection) -> tuple[int, ...]:
        if writer.events.count("pass") >= 1:  # the catch-up pass: held until released
            held.set()
            release.wait(10)
        return passive(con)

    monkeypatch.setattr(audit.wal, "_passive", slow)
    try:
        writer.commit("commit 1")
        reader.execute("BEGIN")  # holds the first pass back: frames are left
        reader.execute("SELECT count(*) FROM t").fetchone()
        writer.commit("commit 2")
        writer.checkpointer.start()
        assert await _waits_for_a_commit(writer), writer.events
        watched = writer.checkpointer._commit
        assert isinstance(watched, _Watched)
        watched.waiting.clear()
        writer.commit("commit 3")  # the first pass, held back by the reader
        assert await _waits_for_a_commit(writer), writer.events
        reader.execute("COMMIT")
        writer.commit("commit 4")  # the catch-up pass starts, and is held
        assert await asyncio.to_thread(held.wait, 10)
        await asyncio.to_thread(writer.checkpointer.before_write, writer.con)
        writer.events.append("begin")
        assert writer.checkpointer.checkpoints == 0  # the pass is still under way
        watched.waiting.clear()
        release.set()
        # a transaction began during that pass: the WAL cannot restart there, so one
        # more pass follows, after the next commit
        assert await _waits_for_a_commit(writer), writer.events
        writer.commit("commit 5")
        await writer.passes(1)
        assert writer.events == [
            "commit 1", "commit 2", "commit 3", "checkpoint", "pass",
            "commit 4", "begin", "pass", "commit 5", "pass",
        ]  # fmt: skip
        assert writer.checkpointer._settled.is_set()
    finally:
        release.set()
        reader.close()
        writer.close()


def test_a_wal_at_the_backstop_is_not_truncated_when_it_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's settings with a backstop of 100 pages: the WAL reaches it, SQLite's
    auto-checkpoint copies it, the next commit restarts the WAL - and the file keeps its
    size (its frames are overwritten in place). Before, the size limit was the pages
    alone, smaller than those frames with their headers: the restart truncated the file."""
    monkeypatch.setattr(audit.wal, "BACKSTOP_PAGES", 100)
    path = tmp_path / "limit.db"
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE t (b BLOB)")
        audit.wal.configure_writer(con)
        sizes = []
        for _ in range(130):  # a page a commit, and the table's pages
            con.execute("INSERT INTO t VALUES (?)", (b"x" * 3000,))
            sizes.append(_wal_size(path))
        grown = max(sizes)
        assert grown > 100 * PAGE  # it reached the backstop
        restarted = sizes.index(grown) + 1
        assert sizes[restarted:] and min(sizes[restarted:]) == grown, sizes
    finally:
        con.close()
