"""A customer's lock among the processes on one SQLite file, without a system call per
change while one process alone writes customers (issue 11, branch ``i11-lock``).

The lock is a POSIX record lock on one byte of ``<database>.subjects.lock``, at the
offset of the customer's lock key (``key & (2**62 - 1)``), taken without blocking and
retried every 1-20 ms until the wait runs out (:mod:`common.byte_lock`). Two bytes
beyond every customer's offset coordinate the processes:

* ``SOLE`` (offset 2**62): a process skips the customers' bytes **only while it holds a
  write lock on SOLE** - then no other process holds SOLE at all, and one that wants to
  write a customer must get SOLE first. Every other process that writes customers holds a
  read lock on SOLE, from its first customer lock until it closes the store, and locks
  each customer's byte as before.
* ``WANT`` (offset 2**62 + 1): a process that finds SOLE write-locked read-locks WANT
  ("let me in") and retries SOLE (write, else read) until its wait runs out
  (``LockTimeout``); it releases WANT once in (not before: a wait given up keeps
  asking, so that the next hold gets in sooner).

The process holding SOLE for writing looks at WANT every :data:`PERIOD` seconds on its
event loop (one ``F_GETLK``, not one per change). When another process wants in, it
first write-locks the byte of every customer it holds (none can be held elsewhere: no
other process got past SOLE), and only then turns its SOLE lock into a read lock
(``F_SETLK F_RDLCK``: atomic), which lets the other in; from then on it locks the
customers' bytes like everyone. While it holds SOLE for reading, the same timer tries,
when WANT is free, to turn that read lock back into a write lock without waiting: it
succeeds once every other process has left (closed the store, or died: the kernel drops
a process's locks with it), and the changes in flight still release their bytes.

POSIX record locks belong to the process and to the file, not to a descriptor: closing
any descriptor of the file drops every lock of the process on it, and a fork's child
inherits none. So a process keeps **one** descriptor per lock file (:data:`_OPEN`, by
device and inode, shared and counted by every ``SqliteBackend`` of the process on that
file), and a fork's child forgets them (it locks nothing, it never skips). Two holds of
one byte in one process never exclude each other (as before: two ``SqliteBackend`` on one
file in one process share no customer exclusion; the audit log's in-process lock comes
first); the byte is released when the last of them leaves.

Every process on one file must run this code: an older one locks the customers' bytes
without knowing SOLE, and a process holding SOLE would not see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

from audit.errors import AuditUnavailable, LockTimeout, LockWait
from common import byte_lock

log = logging.getLogger(__name__)

#: a lock key (a signed 64-bit int) as a non-negative file offset
OFFSET_MASK: Final = (1 << 62) - 1
#: the bytes beyond every customer's offset (see the module's docstring)
SOLE: Final = 1 << 62
WANT: Final = SOLE + 1
#: how often the process holding SOLE looks at WANT (or tries to get SOLE back)
PERIOD: Final = 0.025
_RETRY_FIRST, _RETRY_MAX = 0.001, 0.02

# the modes of a process on one lock file
_OUT, _SHARED, _ALONE = 0, 1, 2


class SubjectBytes:
    """This process's customer locks on one lock file (one descriptor, see the module's
    docstring); :func:`open_bytes` and :meth:`close`."""

    __slots__ = (
        "_file",
        "_loop",
        "_timer",
        "_wants",
        "_warned",
        "fd",
        "held",
        "locked",
        "mode",
        "users",
    )

    def __init__(self, fd: int, file: tuple[int, int]) -> None:
        self.fd, self._file, self.users = fd, file, 1
        #: _ALONE while this process holds SOLE for writing (it skips the bytes)
        self.mode = _OUT
        #: the customers' offsets held in this process, each with its number of holds
        self.held: dict[int, int] = {}
        #: which of them this process has locked in the file
        self.locked: set[int] = set()
        self._wants = False  # WANT read-locked by this process
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._warned = False

    def close(self) -> None:
        """One user fewer; the last closes the descriptor (dropping every lock)."""
        self.users -= 1
        if self.users > 0 or self.fd < 0:
            return
        if _OPEN.get(self._file) is self:
            del _OPEN[self._file]
        self._forget()

    def _forget(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        fd, self.fd, self.mode = self.fd, -1, _OUT
        self.locked.clear()
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def hold(self, offset: int) -> None:
        """Count a hold of ``offset`` taken while alone (no system call)."""
        held = self.held
        held[offset] = held.get(offset, 0) + 1

    def release(self, offset: int) -> None:
        """One hold of ``offset`` fewer; the last releases its byte if it was locked."""
        held = self.held
        left = held.get(offset, 0) - 1
        if left > 0:
            held[offset] = left
            return
        held.pop(offset, None)
        if offset in self.locked:
            self.locked.discard(offset)
            if self.fd >= 0:
                with contextlib.suppress(OSError):
                    byte_lock.unlock(self.fd, offset)

    async def acquire(self, offset: int, wait: float) -> None:
        """Hold ``offset`` among processes: at once while alone, else its byte, retried
        until ``wait`` runs out (LockTimeout)."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + wait, _RETRY_FIRST
        if self.mode == _OUT:
            await self._join(loop, deadline, wait)
        while True:
            if self.mode == _ALONE:
                self.hold(offset)
                return
            try:
                byte_lock.lock(self.fd, offset)  # as lockf, keeping the GIL (issue 11)
                break
            except OSError as exc:  # EAGAIN/EACCES: another process holds it
                _refused_or_raise(exc)
                if loop.time() >= deadline:
                    raise LockTimeout(LockWait.SUBJECT, wait) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX)
        self.hold(offset)
        self.locked.add(offset)

    async def _join(self, loop: asyncio.AbstractEventLoop, deadline: float, wait: float) -> None:
        """Get SOLE: for writing if no other process holds it, else (after asking with
        WANT) for reading once its holder has let others in."""
        pause = _RETRY_FIRST
        try:
            while self.mode == _OUT:
                if self.fd < 0:
                    raise AuditUnavailable("the audit store is closed")
                try:
                    byte_lock.lock(self.fd, SOLE)
                    self._start(loop, _ALONE)
                    return
                except OSError as exc:
                    _refused_or_raise(exc)
                if not self._wants:
                    with contextlib.suppress(BlockingIOError, PermissionError):
                        byte_lock.lock_shared(self.fd, WANT)
                        self._wants = True
                try:
                    byte_lock.lock_shared(self.fd, SOLE)
                    self._start(loop, _SHARED)
                    return
                except OSError as exc:
                    _refused_or_raise(exc)
                if loop.time() >= deadline:
                    raise LockTimeout(LockWait.SUBJECT, wait)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX)
        finally:  # a wait given up keeps asking: the next is let in sooner
            if self._wants and self.mode != _OUT:
                self._wants = False
                with contextlib.suppress(OSError):
                    byte_lock.unlock(self.fd, WANT)

    def _start(self, loop: asyncio.AbstractEventLoop, mode: int) -> None:
        self.mode, self._loop = mode, loop
        self._timer = loop.call_later(PERIOD, self._tick)

    def rearm(self) -> None:
        """The timer again on this loop if the one it ran on is closed (a store of the
        file left open by an earlier loop of this process must not keep others out)."""
        loop = self._loop
        if self.mode != _OUT and loop is not None and loop.is_closed():
            with contextlib.suppress(RuntimeError):  # no loop running: the next user's
                self._start(asyncio.get_running_loop(), self.mode)

    def _tick(self) -> None:
        """The timer: let a process that wants in in, or get SOLE back for writing."""
        self._timer = None
        if self.fd < 0 or self.mode == _OUT:
            return
        try:
            if self.mode == _ALONE:
                if byte_lock.held_elsewhere(self.fd, WANT):
                    self._share()
            elif not byte_lock.held_elsewhere(self.fd, WANT):
                with contextlib.suppress(BlockingIOError, PermissionError):
                    byte_lock.lock(self.fd, SOLE)  # a read lock of ours becomes a write lock
                    self.mode = _ALONE
        except OSError as exc:  # stays in its mode (safe); asked again next period
            if not self._warned:
                self._warned = True
                log.warning(
                    "audit customer locks: cannot let another process in (%s)", type(exc).__name__
                )
        if self._loop is not None and not self._loop.is_closed():
            self._timer = self._loop.call_later(PERIOD, self._tick)

    def _share(self) -> None:
        """Lock the byte of every customer held here, then let the others in."""
        fd = self.fd
        for offset in self.held:
            if offset not in self.locked:
                byte_lock.lock(fd, offset)  # no other process holds it: past SOLE
                self.locked.add(offset)
        byte_lock.lock_shared(fd, SOLE)  # the write lock becomes a read lock
        self.mode = _SHARED


def _refused_or_raise(exc: OSError) -> None:
    """Nothing for a lock held by another process (EAGAIN/EACCES), else AuditUnavailable."""
    if not isinstance(exc, BlockingIOError | PermissionError):
        raise AuditUnavailable(f"the audit store failed ({type(exc).__name__})") from exc


#: this process's lock files, by (device, inode)
_OPEN: dict[tuple[int, int], SubjectBytes] = {}


def open_bytes(database: Path) -> SubjectBytes:
    """This process's customer locks of ``database`` (``<database>.subjects.lock``,
    created if missing): the same object, one descriptor, for every user in this process
    (:meth:`SubjectBytes.close` each). AuditUnavailable if the file cannot be opened."""
    path = database.with_name(f"{database.name}.subjects.lock")
    try:
        with contextlib.suppress(FileNotFoundError):
            known = os.stat(path)  # no descriptor opened: none closed after (see above)
            found = _OPEN.get((known.st_dev, known.st_ino))
            if found is not None:
                found.users += 1
                found.rearm()
                return found
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        opened = os.fstat(fd)
    except OSError as exc:
        raise AuditUnavailable(f"the audit store failed ({type(exc).__name__})") from exc
    file = (opened.st_dev, opened.st_ino)
    found = _OPEN.get(file)
    if found is not None:  # created meanwhile by this process: keep this descriptor
        found.users += 1  # open (closing it would drop the locks held through the other)
        _SPARE.append(fd)
        return found
    _OPEN[file] = state = SubjectBytes(fd, file)
    return state


_SPARE: list[int] = []


def _after_fork_in_child() -> None:
    """A fork's child holds none of its parent's record locks: it forgets the files (its
    users then take the slow way and fail as closed) and opens its own on next use."""
    for state in list(_OPEN.values()):
        state._forget()
    _OPEN.clear()
    _SPARE.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SubjectLock(AbstractAsyncContextManager[None]):
    """A customer's lock among processes, held for an ``async with`` block: while this
    process is alone on the file, counted in :attr:`SubjectBytes.held` only."""

    __slots__ = ("_bytes", "_offset", "_store", "_wait")

    def __init__(self, store: _Opener, key: int, wait: float) -> None:
        self._store, self._offset, self._wait = store, key & OFFSET_MASK, wait

    async def __aenter__(self) -> None:
        held = self._store._subjects
        if held is not None and held.mode == _ALONE:
            held.hold(self._offset)
            self._bytes = held
            return
        self._bytes = held = self._store._subject_bytes()
        await held.acquire(self._offset, self._wait)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bytes.release(self._offset)


class _Opener(Protocol):  # the part of SqliteBackend that SubjectLock uses
    _subjects: SubjectBytes | None

    def _subject_bytes(self) -> SubjectBytes: ...
