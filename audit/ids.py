"""Sortable entry ids: UUIDv7 (RFC 9562).

48 bits of Unix milliseconds, then (RFC 9562 §6.2, method 3) 12 bits of sub-millisecond
time in 1/4096 ms steps, then 62 random bits: ids made one after the other in a process
sort in the order they were made (two calls are always more than 244 ns apart here).
"""

from __future__ import annotations

import time

from common.entropy import random_bytes


def uuid7() -> str:
    """A new UUIDv7 as its canonical string."""
    ns = time.time_ns()
    ms, rest = divmod(ns, 1_000_000)
    fraction = rest * 4096 // 1_000_000
    rand = int.from_bytes(random_bytes(8), "big") & ((1 << 62) - 1)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | fraction << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
