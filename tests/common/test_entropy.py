"""Random bytes drawn in blocks: never the same slice twice - across threads, and across
a fork (a child that inherited its parent's block must not hand out the parent's next
nonce). The same for the fixed-size streams (lock-free draws), bytes and hex."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from common.entropy import byte_stream, hex_stream, random_bytes


def _random_8() -> bytes:
    return random_bytes(8)


_STREAM_8 = byte_stream(8)
_HEX_8 = hex_stream(8)
#: each way to draw 8 random bytes, and the length of what it returns
DRAWS = [(_random_8, 8), (_STREAM_8, 8), (_HEX_8, 16)]
IDS = ["random_bytes", "byte_stream", "hex_stream"]


def test_draws_are_fresh_and_of_the_asked_size() -> None:
    draws = [random_bytes(12) for _ in range(3000)]  # spans several blocks
    assert {len(d) for d in draws} == {12}
    assert len(set(draws)) == len(draws)
    with pytest.raises(ValueError):
        random_bytes(0)
    with pytest.raises(ValueError):
        random_bytes(4097)


@pytest.mark.parametrize("size", [1, 12, 1000, 4096])
def test_stream_draws_are_fresh_and_of_their_size(size: int) -> None:
    raw, text = byte_stream(size), hex_stream(size)
    draws = [raw() for _ in range(3 * 4096 // size + 3)]  # spans several blocks
    assert {len(d) for d in draws} == {size}
    assert all(type(d) is bytes for d in draws)
    if size >= 8:
        assert len(set(draws)) == len(draws)
    texts = [text() for _ in range(3 * 4096 // size + 3)]
    assert all(re.fullmatch(f"[0-9a-f]{{{2 * size}}}", t) for t in texts)
    if size >= 8:
        assert len(set(texts)) == len(texts)


def test_a_stream_refuses_sizes_out_of_range() -> None:
    for size in (0, 4097):
        with pytest.raises(ValueError):
            byte_stream(size)
        with pytest.raises(ValueError):
            hex_stream(size)


@pytest.mark.parametrize(("draw", "length"), DRAWS, ids=IDS)
def test_threads_never_get_the_same_slice(draw: Callable[[], Any], length: int) -> None:
    got: list[list[Any]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def run(mine: list[Any]) -> None:
        start.wait()
        mine.extend(draw() for _ in range(2000))

    threads = [threading.Thread(target=run, args=(mine,)) for mine in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [d for mine in got for d in mine]
    assert {len(d) for d in every} == {length}
    assert len(set(every)) == len(every) == 16000


@pytest.mark.parametrize(("draw", "length"), DRAWS, ids=IDS)
def test_a_forked_child_does_not_repeat_its_parents_draws(
    draw: Callable[[], Any], length: int
) -> None:
    draw()  # the parent holds a block with unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw, and leave
        got = draw()
        os.write(write, got.encode() if isinstance(got, str) else got)
        os._exit(0)
    os.close(write)
    child = os.read(read, length)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == length
    mine = draw()
    assert child != (mine.encode() if isinstance(mine, str) else mine)
