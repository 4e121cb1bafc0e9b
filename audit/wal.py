"""SQLite's WAL checkpoints, off the commit path.

SQLite's own auto-checkpoint (every 1,000 pages by default) runs inside the commit that
crosses the mark: that commit waits for 1,000 pages copied into the database file and
its sync, 2–6 ms on a small file and up to 25 ms on the gateway's (docs/performance.md,
"WAL checkpoints off the commit path"). Here the writer connection's auto-checkpoint is
a backstop only (:data:`BACKSTOP_PAGES`), and a thread of its own, on a connection of
its own, runs ``PRAGMA wal_checkpoint(PASSIVE)`` at most every :data:`INTERVAL_SECONDS`
while commits happen, and never when none did.

A checkpoint beside a commit slows that commit (they share the disk and the CPUs), so a
due pass is timed against the commits: while the writer is busy (its last commit or
transaction start less than :data:`STEADY_SECONDS` ago) it starts right after the next
commit completes, when the gap before the one after is longest (waiting
:data:`COMMIT_WAIT_SECONDS` at most for one); with the writer idle it starts at once.

A passive checkpoint takes no lock a commit needs: it copies what is committed into the
database file while the writer goes on appending to the WAL. With ``synchronous=FULL``
it syncs the WAL before it copies and the database file before it marks the frames
copied, so a commit stays as durable as before. Once every frame is copied, the next
write transaction starts the WAL from its beginning again, so the WAL stays as large as
what is written between two checkpoints. Several processes on one file (``serve
--workers N``) each run one: whichever process writes, its own checkpointer follows
(two at once do not wait for each other: the second finds the checkpoint lock taken and
returns). Under a steady stream of commits a pass often leaves the frames committed
during it; the next pass, right after the next commit too, copies those few
(:data:`PASSES` at most). The WAL starts again from its beginning only when a write
transaction begins with every frame copied, and under load the writer begins its next
transaction right after each commit, i.e. always during such a pass: so the writer
thread, before its next transaction, waits for a short pass that started after its
commit (:data:`RESTART_WAIT_SECONDS` at most), and a pass during which a transaction
began anyway does not end the catch-up. Only when none got there does the writer
thread, before its next transaction, copy what the last pass left
(:meth:`WalCheckpointer.before_write`).
Should the background fall behind anyway (a WAL of :data:`BACKSTOP_PAGES` pages), the
commit that crosses it checkpoints as SQLite does by default.

At close, :func:`truncate` empties the WAL (``wal_checkpoint(TRUNCATE)``), waiting at most
:data:`CLOSE_WAIT_MS` for the other processes' transactions.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: at most one background checkpoint per this many seconds while commits happen
INTERVAL_SECONDS = 0.2
#: the writer counts as busy while its last commit (or transaction start) is this recent
STEADY_SECONDS = 0.01
#: how long a due checkpoint of a busy writer waits for the next commit, at most
COMMIT_WAIT_SECONDS = 0.2
#: how long the writer waits, before its next transaction, for a catch-up pass, at most
RESTART_WAIT_SECONDS = 0.01
#: passes of one background checkpoint at most (see :func:`_catch_up`)
PASSES = 4
#: the writer connection's own auto-checkpoint, a backstop (pages of 4 KiB: 40 MB);
#: with its frames' headers, also the WAL file's size limit (:func:`wal_size_limit`)
BACKSTOP_PAGES = 10_000
#: frames beyond the backstop the WAL file keeps room for (the commit that crosses it)
LIMIT_SLACK_FRAMES = 1_000
#: how long the checkpoint at close waits for other connections' transactions
CLOSE_WAIT_MS = 2_000


def configure_writer(con: sqlite3.Connection) -> None:
    """The writer connection's WAL settings: the auto-checkpoint as a backstop only."""
    con.execute(f"PRAGMA wal_autocheckpoint={int(BACKSTOP_PAGES)}")
    con.execute(f"PRAGMA journal_size_limit={wal_size_limit(con)}")


def wal_size_limit(con: sqlite3.Connection) -> int:
    """The WAL file's size limit (bytes): a WAL of :data:`BACKSTOP_PAGES` frames and
    the commit that crosses it (:data:`LIMIT_SLACK_FRAMES`) - each frame a page and its
    24-byte header, after the file's 32-byte header. A limit of the pages alone was
    smaller than a WAL at the backstop: each restart after it truncated the file, and
    the next generation's commits grew it again (a metadata sync each)."""
    page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
    return 32 + (int(BACKSTOP_PAGES) + LIMIT_SLACK_FRAMES) * (page_size + 24)


def truncate(con: sqlite3.Connection) -> tuple[int, int, int]:
    """Checkpoint everything and empty the WAL file, on a connection outside a
    transaction: (busy, WAL frames, frames checkpointed) as SQLite reports them. Busy
    (1) when another connection's transaction did not end within
    :data:`CLOSE_WAIT_MS`; the WAL then stays for the next checkpoint."""
    con.execute(f"PRAGMA busy_timeout={int(CLOSE_WAIT_MS)}")
    busy, frames, done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(busy), int(frames), int(done)


def _passive(con: sqlite3.Connection) -> tuple[int, int, int]:
    """One passive checkpoint: (busy, WAL frames, frames copied) as SQLite reports them."""
    busy, frames, done = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(frames), int(done)


def _catch_up(
    con: sqlite3.Connection,
    between: Callable[[], None] = lambda: None,
    begun: Callable[[], int] = lambda: 0,
    after: Callable[[], None] = lambda: None,
) -> bool:
    """Passive checkpoints until one copies every frame of the WAL with no write
    transaction begun meanwhile (or :data:`PASSES`), ``between`` called before each one
    after the first and ``after`` after each: whether it got there. ``begun`` counts
    the writer's transactions.

    The WAL starts again from its beginning only if every frame is copied when a write
    transaction begins. The commits made during a long pass prevent that, and so does a
    transaction begun during the pass (it began with frames left to copy): a WAL that
    only grows makes each commit's sync dearer (the file's size changes) and reaches the
    backstop. So the short passes after it copy those too - each timed, as the first,
    right after a commit (``between``), while the writer waits for it before its next
    transaction (:meth:`WalCheckpointer.before_write`), so that this one begins with
    every frame copied; :meth:`WalCheckpointer.before_write` copies what is left when
    they do not get there."""
    for n in range(PASSES):
        if n:
            between()
        began = begun()
        try:
            busy, frames, done = _passive(con)
        finally:
            after()
        if busy:
            return False
        if done >= frames and begun() == began:
            return True
    return False


class WalCheckpointer:
    """Passive checkpoints of one database file on a thread and a connection of their
    own. :meth:`before_write` and :meth:`committed` (from the writer thread, around
    each transaction) time them; :meth:`close` stops it. ``clock`` is for the tests."""

    def __init__(
        self,
        path: Path,
        connect: Callable[[Path], sqlite3.Connection],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path, self._connect, self._clock = path, connect, clock
        self._wrote = threading.Event()  # a commit since the last pass began
        self._commit = threading.Event()  # a commit since the pass began waiting for one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sqlite-ckpt", daemon=True)
        #: the writer's last commit or transaction start; the last pass's start (the
        #: first pass is due :data:`INTERVAL_SECONDS` after this)
        self._active, self._last_pass = float("-inf"), clock()
        #: checkpoints run, and those that failed (logged)
        self.checkpoints = 0
        self.failures = 0
        #: the background could not catch up with the commits: the writer finishes
        self._behind = False
        #: the writer's transactions begun (counted by :meth:`before_write`)
        self._begins = 0
        #: a catch-up pass waits for the next commit; the writer, once it committed,
        #: waits for that pass (``_settled`` clear) before its next transaction
        self._catching_up = False
        self._settled = threading.Event()
        self._settled.set()
        self._settle = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        """A commit happened: checkpoint within :data:`INTERVAL_SECONDS` of the last
        pass, and a pass waiting for a commit starts now."""
        self._active = self._clock()
        if self._catching_up:  # the pass starts now: the next transaction waits for it
            with self._settle:
                if self._catching_up:
                    self._settled.clear()
        self._wrote.set()
        self._commit.set()

    def before_write(self, con: sqlite3.Connection) -> None:
        """On the writer thread, before a write transaction: a due pass waits for its
        commit. And if the background could not catch up (a busy writer commits during
        every pass), one passive checkpoint here, where nothing of this process can
        commit meanwhile. It copies only what the last pass left (a few pages), and the
        WAL then starts again.

        A catch-up pass that started after this thread's last commit is waited for
        (:data:`RESTART_WAIT_SECONDS` at most): it copies a commit or two, and this
        transaction, begun after it, then starts the WAL again from its beginning."""
        if not self._settled.is_set():
            self._settled.wait(RESTART_WAIT_SECONDS)
        self._begins += 1
        self._active = self._clock()
        if self._behind:
            self._behind = False
            _passive(con)

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first)."""
        self._stop.set()
        self._wrote.set()
        self._commit.set()
        self._settled.set()
        if self._thread.is_alive():
            self._thread.join()

    def _after_the_next_commit(self) -> None:
        """Return when a pass may start: at once with the writer idle, else right after
        its next commit (:data:`COMMIT_WAIT_SECONDS` at most). The wake-up is cleared
        before the writer's activity is read: a commit in between ends the wait at once."""
        self._commit.clear()
        if self._stop.is_set() or self._clock() - self._active >= STEADY_SECONDS:
            return
        self._commit.wait(COMMIT_WAIT_SECONDS)

    def _before_catch_up(self) -> None:
        """A catch-up pass waits for the next commit, which then holds the writer's
        next transaction back until the pass ends (:meth:`_caught_up`)."""
        self._catching_up = True
        self._after_the_next_commit()

    def _caught_up(self) -> None:
        """A pass ended: the writer's next transaction may begin."""
        with self._settle:
            self._catching_up = False
            self._settled.set()

    def _begun(self) -> int:
        return self._begins

    def _run(self) -> None:
        con: sqlite3.Connection | None = None
        try:
            # stop is looked at before each wait: a close() between the pass's start
            # and its clearing of ``_wrote`` would otherwise leave it waiting for ever
            while not self._stop.is_set():
                self._wrote.wait()
                due = self._last_pass + INTERVAL_SECONDS - self._clock()
                if self._stop.wait(max(due, 0.0)):
                    return
                self._after_the_next_commit()
                self._wrote.clear()  # the pass copies every commit made until now
                self._last_pass = self._clock()
                try:
                    if con is None:
                        con = self._connect(self._path)
                    self._behind = not _catch_up(
                        con, self._before_catch_up, self._begun, self._caught_up
                    )
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # the next commit tries again; the backstop holds
                    self.failures += 1
                    log.warning("audit WAL checkpoint failed (%s)", type(exc).__name__)
        finally:
            if con is not None:
                con.close()
