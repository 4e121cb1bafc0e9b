"""Random bytes from the operating system, drawn in blocks.

``os.urandom`` is one system call per draw, and it releases the GIL: in a process whose
other threads are busy (the audit store's writer thread), every AES-GCM nonce and every
entry id would give the GIL away and wait to get it back. :func:`random_bytes` hands out
slices of a 4 KiB block read from ``os.urandom`` instead - the same bytes, one call per
block.

No slice is handed out twice: draws are serialised by a lock (threads), and a forked
child drops the block it inherited from its parent (``os.register_at_fork``), so parent
and child never share a nonce or an id.
"""

from __future__ import annotations

import os
import threading
from typing import Final

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
os.register_at_fork(after_in_child=_pool.after_fork)


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
