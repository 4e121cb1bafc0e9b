"""common/byte_lock.py: the same record lock as ``fcntl.lockf``, on real files and real
processes (a forked child asks with ``fcntl.lockf``), and the GIL kept on Linux."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common import byte_lock


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    descriptor = os.open(tmp_path / "subjects.lock", os.O_RDWR | os.O_CREAT, 0o600)
    yield descriptor
    os.close(descriptor)


def in_child(check: Callable[[], int]) -> int:
    """``check()``'s number as the exit code of a forked child (another process: POSIX
    record locks of one process never exclude each other)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            code = check()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def lockf_free(fd: int, offset: int) -> Callable[[], int]:
    """0 when ``fcntl.lockf`` can take byte ``offset`` (then released), 1 when it is held."""

    def check() -> int:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except (BlockingIOError, PermissionError):
            return 1
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
        return 0

    return check


def test_a_locked_byte_is_held_against_lockf_of_another_process_until_unlocked(fd: int) -> None:
    offset = (1 << 40) + 7  # beyond 32 bits: the 64-bit offset is passed whole
    byte_lock.lock(fd, offset)
    assert in_child(lockf_free(fd, offset)) == 1
    assert in_child(lockf_free(fd, offset + 1)) == 0  # one byte only
    assert in_child(lockf_free(fd, offset - 1)) == 0
    byte_lock.unlock(fd, offset)
    assert in_child(lockf_free(fd, offset)) == 0


def test_a_byte_another_process_holds_with_lockf_is_refused_without_waiting(fd: int) -> None:
    offset = 4242
    held_r, held_w = os.pipe()  # child -> parent: the byte is held
    done_r, done_w = os.pipe()  # parent -> child: let it go
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child holds the byte until told
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
            os.write(held_w, b"x")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(held_r, 1) == b"x"
        with pytest.raises((BlockingIOError, PermissionError)):
            byte_lock.lock(fd, offset)
        byte_lock.lock(fd, offset + 1)  # the next byte is free
        byte_lock.unlock(fd, offset + 1)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)
        for end in (held_r, held_w, done_r, done_w):
            os.close(end)
    byte_lock.lock(fd, offset)  # free once the child is gone
    byte_lock.unlock(fd, offset)


def lockf_shared_free(fd: int, offset: int) -> Callable[[], int]:
    """0 when ``fcntl.lockf`` can read-lock byte ``offset`` (then released), 1 if not."""

    def check() -> int:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except (BlockingIOError, PermissionError):
            return 1
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
        return 0

    return check


def held_elsewhere_in_child(fd: int, offset: int) -> Callable[[], int]:
    return lambda: int(byte_lock.held_elsewhere(fd, offset))


def test_a_shared_byte_admits_readers_of_other_processes_not_writers(fd: int) -> None:
    offset = (1 << 62) + 1  # beyond every customer's offset (audit/sqlite_locks.py)
    byte_lock.lock_shared(fd, offset)
    assert in_child(lockf_shared_free(fd, offset)) == 0
    assert in_child(lockf_free(fd, offset)) == 1
    assert in_child(held_elsewhere_in_child(fd, offset)) == 1
    assert not byte_lock.held_elsewhere(fd, offset)  # this process's own lock never counts
    byte_lock.lock(fd, offset)  # this process's read lock becomes a write lock
    assert in_child(lockf_shared_free(fd, offset)) == 1
    byte_lock.lock_shared(fd, offset)  # and back, atomically
    assert in_child(lockf_shared_free(fd, offset)) == 0
    byte_lock.unlock(fd, offset)
    assert in_child(held_elsewhere_in_child(fd, offset)) == 0
    assert in_child(lockf_free(fd, offset)) == 0


def test_a_closed_descriptor_raises_lockfs_error(tmp_path: Path) -> None:
    closed = os.open(tmp_path / "gone.lock", os.O_RDWR | os.O_CREAT, 0o600)
    os.close(closed)
    with pytest.raises(OSError) as raised:
        byte_lock.lock(closed, 0)
    assert raised.value.errno == errno.EBADF


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_on_64_bit_linux_the_calls_keep_the_gil() -> None:
    assert byte_lock.KEEPS_GIL
