"""Random bytes from the operating system, drawn in blocks.

``os.urandom`` is one system call per draw, and it releases the GIL: in a process whose
other threads are busy (the audit store's writer thread), every AES-GCM nonce and every
entry id would give the GIL away and wait to get it back. :func:`random_bytes` hands out
slices of a 4 KiB block read from ``os.urandom`` instead - the same bytes, one call per
block.

A hot path that always draws the same size binds a stream of that size once
(:func:`byte_stream`, :func:`hex_stream`: the AES-GCM nonces, the random part of the
entry ids): a draw there is a slice at the next offset of its block, without a lock -
the offsets come from an ``itertools.count`` (one atomic step under the GIL), so two
threads never get the same one; only a new block takes the lock.
A hex stream hands out the same bytes as hexadecimal text (the block is converted once).

No slice is handed out twice: draws are serialised by a lock (threads) or by the offset
counter of their block, and a forked child drops the blocks it inherited from its parent
(``os.register_at_fork``), so parent and child never share a nonce or an id.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from typing import Any, Final

_BLOCK: Final = 4096


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.block = b""
        self.pos = 0

    def after_fork(self) -> None:
        self.lock = threading.Lock()  # a lock held by another thread at fork stays held
        self.reset()


_pool = _Pool()


def random_bytes(n: int) -> bytes:
    """``n`` bytes (at most 4 KiB) from the operating system's random source."""
    if not 0 < n <= _BLOCK:
        raise ValueError(f"draw 1 to {_BLOCK} bytes at a time")
    pool = _pool
    with pool.lock:
        pos = pool.pos
        end = pos + n
        if end > len(pool.block):
            pool.block, pos, end = os.urandom(_BLOCK), 0, n
        pool.pos = end
        return pool.block[pos:end]


class _Stream:
    """The blocks of one :func:`stream`: ``state`` is (block, its next offsets, the end
    of its last whole draw), replaced as one value, so a draw never mixes two blocks."""

    def __init__(self, size: int, as_hex: bool) -> None:
        self.size, self.as_hex = size, as_hex
        self.lock = threading.Lock()
        self.state: tuple[bytes | str, itertools.count[int], int] = self._empty()

    def _empty(self) -> tuple[bytes | str, itertools.count[int], int]:
        return (b"", itertools.count(), 0)  # the first draw fetches a block

    def refill(self, seen: object) -> None:
        """A new block, unless another thread replaced ``seen`` already."""
        with self.lock:
            if self.state is not seen:
                return
            draws = _BLOCK // self.size
            block = os.urandom(draws * self.size)
            width = 2 * self.size if self.as_hex else self.size
            self.state = (block.hex() if self.as_hex else block, itertools.count(0, width),
                          draws * width)  # fmt: skip

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.state = self._empty()


_streams: list[_Stream] = []


def byte_stream(size: int) -> Callable[[], bytes]:
    """A function that draws ``size`` bytes (1 to 4 KiB) each call."""
    return _stream(size, as_hex=False)


def hex_stream(size: int) -> Callable[[], str]:
    """A function that draws ``size`` bytes (1 to 4 KiB) each call, as ``2 * size``
    lowercase hexadecimal characters."""
    return _stream(size, as_hex=True)


def _stream(size: int, *, as_hex: bool) -> Callable[[], Any]:
    if not 0 < size <= _BLOCK:
        raise ValueError(f"draw 1 to {_BLOCK} bytes at a time")
    source = _Stream(size, as_hex)
    _streams.append(source)
    width = 2 * size if as_hex else size

    def draw() -> Any:
        while True:
            state = source.state
            block, offsets, end = state
            start = next(offsets)
            if start < end:
                return block[start : start + width]
            source.refill(state)

    return draw


def _after_fork() -> None:
    _pool.after_fork()
    for source in _streams:
        source.after_fork()


os.register_at_fork(after_in_child=_after_fork)
