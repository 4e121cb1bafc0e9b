"""audit/sqlite_locks.py: a process alone on an SQLite file holds its customers without a
system call (a write lock on the SOLE byte instead), lets a newcomer in only after it
has locked the byte of every customer it holds, and becomes alone again when the others
have left - with real processes (``tests/audit/sqlite_lock_proc.py``) on real files."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import sqlite_locks
from audit.errors import AuditUnavailable
from audit.locks import lock_key
from audit.sqlite_locks import OFFSET_MASK, SOLE, WANT
from audit.store_sqlite import SqliteBackend
from common import byte_lock
from tests.audit.conftest import REPO_ROOT

K, L = lock_key("keycom", "100001"), lock_key("keycom", "100002")


class Proc:
    """One process on the store, asked line by line (see sqlite_lock_proc.py)."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter
            [sys.executable, "-m", "tests.audit.sqlite_lock_proc", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        )  # fmt: skip
        assert self.answer() == "ready"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 60.0) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the process did not answer"
        return self.proc.stdout.readline().strip()

    def ask(self, line: str) -> str:
        self.send(line)
        return self.answer()

    def exit(self) -> None:
        if self.proc.poll() is None:
            self.send("exit")
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def start(procs: list[Proc], path: Path) -> Proc:
    procs.append(Proc(path))
    return procs[-1]


def held_elsewhere(path: Path, offset: int) -> bool:
    """Whether a process (not this one, which holds no lock on the file) locks the byte."""
    fd = os.open(path.with_name(f"{path.name}.subjects.lock"), os.O_RDWR | os.O_CREAT)
    try:
        return byte_lock.held_elsewhere(fd, offset)
    finally:
        os.close(fd)


def eventually(proc: Proc, mode: str) -> None:
    deadline = time.monotonic() + 20
    while proc.ask("mode") != mode:
        assert time.monotonic() < deadline, f"never {mode}"
        time.sleep(0.02)


def test_alone_a_process_locks_no_byte_of_the_customers_it_holds(
    tmp_path: Path, procs: list[Proc]
) -> None:
    path = tmp_path / "audit.db"
    alone = start(procs, path)
    assert alone.ask(f"hold {K} 5") == "held"
    assert alone.ask("mode") == "alone"
    assert held_elsewhere(path, SOLE)
    assert not held_elsewhere(path, K & OFFSET_MASK)  # no system call per customer
    assert alone.ask(f"release {K}") == "released"
    alone.exit()
    assert not held_elsewhere(path, SOLE)  # dropped with the descriptor


def test_a_newcomer_waits_until_the_process_alone_has_let_it_in(
    tmp_path: Path, procs: list[Proc]
) -> None:
    path = tmp_path / "audit.db"
    alone, newcomer = start(procs, path), start(procs, path)
    assert alone.ask(f"hold {K} 5") == "held"
    alone.send("block 4")  # its loop busy: its timer cannot let anyone in
    assert newcomer.ask(f"hold {L} 0.5") == "timeout"  # even for another customer
    assert held_elsewhere(path, WANT)  # it asked, and asks on after giving up
    assert alone.answer() == "unblocked"
    assert newcomer.ask(f"hold {L} 10") == "held"
    assert not held_elsewhere(path, WANT)  # in: it no longer asks
    assert alone.ask("mode") == "shared"
    assert newcomer.ask("mode") == "shared"
    assert held_elsewhere(path, K & OFFSET_MASK)  # locked by the first as it let it in
    assert held_elsewhere(path, L & OFFSET_MASK)


def test_a_customer_held_alone_excludes_the_newcomer_after_the_switch(
    tmp_path: Path, procs: list[Proc]
) -> None:
    path = tmp_path / "audit.db"
    first, second = start(procs, path), start(procs, path)
    assert first.ask(f"hold {K} 5") == "held"  # alone: no byte locked
    assert second.ask(f"hold {K} 0.5") == "timeout"  # let in, but the customer is held
    assert second.ask(f"hold {L} 10") == "held"
    assert first.ask(f"hold {L} 0.3") == "timeout"  # and the other way round
    assert first.ask(f"release {K}") == "released"
    assert not held_elsewhere(path, K & OFFSET_MASK)
    assert second.ask(f"hold {K} 10") == "held"
    assert first.ask(f"hold {K} 0.3") == "timeout"
    assert second.ask(f"release {K}") == "released"
    assert first.ask(f"hold {K} 10") == "held"


def test_the_first_process_is_alone_again_once_the_other_left_and_lets_the_next_in(
    tmp_path: Path, procs: list[Proc]
) -> None:
    path = tmp_path / "audit.db"
    first, second = start(procs, path), start(procs, path)
    assert first.ask(f"hold {K} 5") == "held"
    assert second.ask(f"hold {L} 10") == "held"
    assert first.ask("mode") == "shared"
    second.exit()  # its locks die with it
    eventually(first, "alone")
    assert first.ask(f"release {K}") == "released"  # taken before: its byte released
    assert not held_elsewhere(path, K & OFFSET_MASK)
    assert first.ask(f"hold {K} 5") == "held"
    assert not held_elsewhere(path, K & OFFSET_MASK)  # alone again: no byte
    third = start(procs, path)
    assert third.ask(f"hold {K} 0.5") == "timeout"
    assert third.ask("mode") == "shared"
    assert first.ask(f"release {K}") == "released"
    assert third.ask(f"hold {K} 10") == "held"


def test_a_killed_process_alone_lets_the_next_be_alone(tmp_path: Path, procs: list[Proc]) -> None:
    path = tmp_path / "audit.db"
    first = start(procs, path)
    assert first.ask(f"hold {K} 5") == "held"
    first.kill()  # SIGKILL: no close, the kernel drops its locks
    second = start(procs, path)
    assert second.ask(f"hold {K} 5") == "held"
    assert second.ask("mode") == "alone"


def test_one_customer_stays_serialised_while_processes_come_and_go(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """A read-modify-write of one number under one customer's lock, by a process that
    starts alone, one that joins and leaves, and one that joins after: no increment lost
    across the switches (alone → shared → alone → shared)."""
    path, counter = tmp_path / "audit.db", tmp_path / "counter"
    counter.write_text("0")
    first = start(procs, path)
    first.send(f"count {K} 600 {counter}")
    second = start(procs, path)
    assert second.ask(f"count {K} 150 {counter}") == "counted"
    second.exit()
    third = start(procs, path)
    assert third.ask(f"count {K} 150 {counter}") == "counted"
    assert first.answer() == "counted"
    assert int(counter.read_text()) == 900


async def test_stores_on_one_file_in_one_process_share_one_descriptor(tmp_path: Path) -> None:
    """Closing a descriptor drops every lock of the process on the file: a second store
    of the file in this process must not close the first one's."""
    path = tmp_path / "audit.db"
    first, second = await SqliteBackend.connect(path), await SqliteBackend.connect(path)
    try:
        async with first.subject_lock(K, 1.0):
            async with second.subject_lock(L, 1.0):
                assert first._subjects is second._subjects
            await second.close()
            assert await asyncio.to_thread(held_elsewhere_in_child, path, SOLE)
            assert first._subjects is not None and first._subjects.fd >= 0
    finally:
        await second.close()
        await first.close()
    assert not await asyncio.to_thread(held_elsewhere_in_child, path, SOLE)


def held_elsewhere_in_child(path: Path, offset: int) -> bool:
    """:func:`held_elsewhere` asked by another process (this one holds locks on the file)."""
    probe = (
        "import sys; from pathlib import Path; from tests.audit.test_sqlite_sole import "
        "held_elsewhere; print(held_elsewhere(Path(sys.argv[1]), int(sys.argv[2])))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe, str(path), str(offset)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip() == "True"


async def test_a_fork_child_never_skips_the_lock_it_did_not_inherit(tmp_path: Path) -> None:
    """A fork's child holds none of its parent's record locks: it forgets the file and
    refuses the customer's lock instead of skipping it."""
    backend = await SqliteBackend.connect(tmp_path / "audit.db")
    try:
        async with backend.subject_lock(K, 1.0):
            pass
        sqlite_locks._after_fork_in_child()  # what os.fork runs in the child
        with pytest.raises(AuditUnavailable):
            async with backend.subject_lock(L, 0.2):
                pass
    finally:
        await backend.close()


async def test_a_closed_store_refuses_the_customers_lock(tmp_path: Path) -> None:
    backend = await SqliteBackend.connect(tmp_path / "audit.db")
    await backend.close()
    with pytest.raises(AuditUnavailable):
        async with backend.subject_lock(K, 0.2):
            pass


def test_a_store_left_open_by_an_ended_loop_still_lets_others_in(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """The process alone on the file had its timer on a loop that ended (its store never
    closed): the next store of the file in this process runs the timer on its own loop."""
    path = tmp_path / "audit.db"

    async def left_open() -> SqliteBackend:
        backend = await SqliteBackend.connect(path)
        async with backend.subject_lock(K, 1.0):
            pass
        return backend

    abandoned = asyncio.run(left_open())

    async def then_another() -> None:
        backend = await SqliteBackend.connect(path)
        try:
            async with backend.subject_lock(K, 1.0):
                other = await asyncio.to_thread(start, procs, path)
                assert await asyncio.to_thread(other.ask, f"hold {L} 10") == "held"
                assert await asyncio.to_thread(other.ask, f"hold {K} 0.3") == "timeout"
        finally:
            await backend.close()

    try:
        asyncio.run(then_another())
    finally:
        asyncio.run(abandoned.close())
