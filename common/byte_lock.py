"""A POSIX write lock on one byte of a file, taken without waiting and without giving
the GIL away.

What ``fcntl.lockf(fd, LOCK_EX | LOCK_NB, 1, offset, SEEK_SET)`` and ``fcntl.lockf(fd,
LOCK_UN, 1, offset, SEEK_SET)`` do - the same ``fcntl(F_SETLK)`` record lock, seen by
``lockf`` in any other process - except that the GIL is kept during the call. Python's
``fcntl`` module releases the GIL around every call; in a process whose other thread
wants it (the SQLite audit store's writer thread), each release can hand the GIL over
and leave the event loop waiting to get it back (docs/performance.md, "The event loop's
CPU, again"). A non-blocking ``F_SETLK`` never waits, so holding the GIL costs nothing:
on Linux the call goes through ``ctypes.PyDLL`` (which keeps the GIL), with the C
library's ``struct flock``; elsewhere (or without ``ctypes``) through ``fcntl.lockf``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import sys
from collections.abc import Callable
from typing import Any, Final

#: ``struct flock`` of 64-bit Linux (glibc and musl): ``l_type`` and ``l_whence``
#: (shorts), ``l_start`` and ``l_len`` (``off_t``), ``l_pid``, padded to 32 bytes
_FLOCK: Final = struct.Struct("=hhxxxxqqi4x")


def _gil_keeping_fcntl() -> Callable[..., int] | None:
    """The C library's ``fcntl``, called with the GIL held; None where the layout of
    :data:`_FLOCK` is not known to be the C library's. (No ``argtypes``: the default
    conversions - int to int, bytes to a pointer to them - cost less per call.)"""
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        function: Any = ctypes.PyDLL(None).fcntl
    except (OSError, AttributeError):  # pragma: no cover - a C library without fcntl
        return None
    return function  # type: ignore[no-any-return]


_fcntl: Final = _gil_keeping_fcntl()
#: whether the calls keep the GIL (Linux, 64 bits); else they are ``fcntl.lockf``'s
KEEPS_GIL: Final = _fcntl is not None


def lock(fd: int, offset: int) -> None:
    """Write-lock byte ``offset`` of ``fd`` without waiting; ``BlockingIOError`` (or
    ``PermissionError``) while another process holds it."""
    _set(fd, offset, fcntl.F_WRLCK, fcntl.LOCK_EX | fcntl.LOCK_NB)


def lock_shared(fd: int, offset: int) -> None:
    """Read-lock byte ``offset`` of ``fd`` without waiting (several processes may hold
    it at once; a write lock of this process on it becomes this read lock, atomically);
    ``BlockingIOError`` (or ``PermissionError``) while another process write-locks it."""
    _set(fd, offset, fcntl.F_RDLCK, fcntl.LOCK_SH | fcntl.LOCK_NB)


def unlock(fd: int, offset: int) -> None:
    """Release this process's lock on byte ``offset`` of ``fd``."""
    _set(fd, offset, fcntl.F_UNLCK, fcntl.LOCK_UN)


def held_elsewhere(fd: int, offset: int) -> bool:
    """Whether another process holds any lock (read or write) on byte ``offset`` of
    ``fd``: ``F_GETLK`` on Linux (64 bits), which takes nothing; elsewhere a write lock
    taken and released at once (so a read lock asked for meanwhile may be refused: its
    taker retries). Never waits; this process's own locks never count."""
    if _fcntl is not None:
        answer = fcntl.fcntl(
            fd, fcntl.F_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        )
        return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)
    try:  # pragma: no cover - not Linux 64 bits
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
    except (BlockingIOError, PermissionError):  # pragma: no cover
        return True
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)  # pragma: no cover
    return False  # pragma: no cover


def _set(fd: int, offset: int, kind: int, lockf_code: int) -> None:
    if _fcntl is None:
        fcntl.lockf(fd, lockf_code, 1, offset, os.SEEK_SET)
        return
    # F_SETLK reads the structure and never waits
    if _fcntl(fd, fcntl.F_SETLK, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0)) == -1:
        # refused (held elsewhere, a bad descriptor ...): lockf asks again and raises
        # what it raises (BlockingIOError, PermissionError ...), or takes a lock freed
        # meanwhile - exactly lockf's answer, without reading errno after every call
        fcntl.lockf(fd, lockf_code, 1, offset, os.SEEK_SET)
