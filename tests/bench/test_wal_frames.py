"""``bench/wal_frames.py`` (docs/performance.md, "The SQLite writer thread's statements,
again"): the WAL's frames by commit and by B-tree, the head's seq read from its page, on
real SQLite files - a small made-up schema and a real audit store. No timing asserted."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

from audit import AuditLog, Outcome, upgrade
from bench.audit_bench import MASTER, SIGNING, _intent
from bench.wal_frames import grab, main, read_frames, report, summarize, watch


def _store(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")  # every commit stays in the WAL
    con.execute("CREATE TABLE audit_entry (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    con.execute("CREATE INDEX ix_body ON audit_entry (body)")
    con.execute(
        "CREATE TABLE audit_head (id INTEGER NOT NULL PRIMARY KEY, seq BIGINT NOT NULL,"
        " hash TEXT NOT NULL, checkpoint_seq BIGINT NOT NULL, checkpoint_at TEXT)"
    )
    con.execute("INSERT INTO audit_head VALUES (1, 0, 'genesis', 0, NULL)")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema out of the WAL
    return con


def _commit(con: sqlite3.Connection, first: int, count: int) -> None:
    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        "INSERT INTO audit_entry (seq, body) VALUES (?, ?)",
        [(seq, f"entry {seq:06d}") for seq in range(first, first + count)],
    )
    con.execute("UPDATE audit_head SET seq = ? WHERE id = 1", (first + count - 1,))
    con.execute("COMMIT")


def test_frames_by_commit_and_tree_and_entries_from_the_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    con = _store(path)
    for n in range(4):
        _commit(con, 1 + 5 * n, 5)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO audit_entry (seq, body) VALUES (100, 'not committed')")
    got = summarize(path)
    frames = read_frames((tmp_path / "audit.db-wal").read_bytes())
    con.execute("ROLLBACK")
    con.close()
    assert got["commits"] == 4 == len(frames.commits)
    assert got["entries_per_commit"] == 5.0  # the head's seq: 5, 10, 15, 20
    by_tree = got["by_tree"]
    assert isinstance(by_tree, dict)
    assert by_tree["audit_head"] == 1.0  # each commit rewrote the head's page once
    assert by_tree["audit_entry"] >= 1.0 and by_tree["ix_body"] >= 1.0
    assert got["frames_per_commit"] == sum(by_tree.values())
    assert got["wal_bytes_per_commit"] == got["frames_per_commit"] * (4096 + 24)
    text = report(got)
    assert "entries per commit 5.0" in text and "audit_head" in text


def test_only_the_current_generation_is_read(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    con = _store(path)
    for n in range(6):
        _commit(con, 1 + 3 * n, 3)
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")  # every frame copied: the next restarts
    _commit(con, 19, 2)  # writes the WAL from its beginning, over the older frames
    got = summarize(path)
    con.close()
    assert got["commits"] == 1
    assert os.path.getsize(f"{path}-wal") > 4 * (4096 + 24)  # the older frames still there


def test_a_real_store_grabbed_from_the_process_that_has_it_open(tmp_path: Path) -> None:
    path = tmp_path / "store" / "audit.db"
    path.parent.mkdir()

    async def run() -> dict[str, object]:
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        async with await AuditLog.open(url, master_key=MASTER, signing_key=SIGNING) as log:
            for n in range(6):
                intent_id = await log.begin(_intent(n))
                await log.finish(intent_id, Outcome("applied", None, 200, 1.0), durable=False)
            copy = grab(os.getpid(), tmp_path / "copy")
            return summarize(copy)

    got = asyncio.run(run())
    by_tree = got["by_tree"]
    assert isinstance(by_tree, dict)
    assert got["commits"] and "audit_entry" in by_tree and "ix_audit_entry_subject" in by_tree
    assert got["entries_per_commit"] is not None and 1.0 <= got["entries_per_commit"] <= 12.0  # type: ignore[operator]
    assert main(["--db", str(tmp_path / "copy" / "audit.db")]) == 0


def test_watch_counts_the_wals_restarts_and_its_most_frames(tmp_path: Path) -> None:
    """``watch`` reads the wal-index header while another thread commits: a WAL that a
    checkpoint emptied and the next commit restarted counts as a restart; its most frames
    are those before."""
    path = tmp_path / "w.db"
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t (b BLOB)")
    got: dict[str, int] = {}
    watching = threading.Thread(
        target=lambda: got.update(watch(path.with_name("w.db-shm"), 1.0, 0.001))
    )
    watching.start()
    for _ in range(20):
        con.execute("INSERT INTO t VALUES (?)", (b"x" * 5000,))
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    time.sleep(0.3)
    con.execute("INSERT INTO t VALUES (?)", (b"y",))  # starts the WAL again
    watching.join()
    con.close()
    assert got["restarts"] == 1, got
    assert got["most_frames"] >= 40 and got["readings"] > 10 and got["all_copied"] > 0, got
