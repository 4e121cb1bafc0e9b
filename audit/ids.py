"""Sortable entry ids: UUIDv7 (RFC 9562), time-ordered to the millisecond."""

from __future__ import annotations

import os
import time


def uuid7() -> str:
    """A new UUIDv7 as its canonical string: 48-bit ms time, version 7, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | ((rand >> 62) & 0xFFF) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
