"""Sortable entry ids: UUIDv7 (RFC 9562).

48 bits of Unix milliseconds, then (RFC 9562 §6.2, method 3) 12 bits of sub-millisecond
time in 1/4096 ms steps, then 62 random bits: ids made one after the other in a process
sort in the order they were made (two calls are always more than 244 ns apart here).

The text is put together from parts rather than formatted from a 128-bit integer: the
millisecond's part (``tttttttt-tttt-7``) once per millisecond, and the random part from
a hex stream of the random source (16 hex digits, the first one's top two bits replaced
by the variant ``10``).
"""

from __future__ import annotations

import time
from typing import Final

from common.entropy import hex_stream

_MS_MASK: Final = 0xFFFF_FFFF_FFFF
#: a hex digit -> the variant's ``10`` and its two lower bits (``8``, ``9``, ``a``, ``b``)
_VARIANT: Final = {f"{d:x}": f"{0b1000 | (d & 0b11):x}" for d in range(16)}
_random_hex = hex_stream(8)
_ms: tuple[int, str] = (-1, "")  # the last millisecond, and its part of the text


def uuid7() -> str:
    """A new UUIDv7 as its canonical string."""
    global _ms
    ms, rest = divmod(time.time_ns(), 1_000_000)
    known = _ms
    if known[0] != ms:
        h = f"{ms & _MS_MASK:012x}"
        known = _ms = (ms, f"{h[:8]}-{h[8:]}-7")
    r = _random_hex()
    return f"{known[1]}{rest * 4096 // 1_000_000:03x}-{_VARIANT[r[0]]}{r[1:4]}-{r[4:]}"
