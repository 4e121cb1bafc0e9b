"""Random bytes drawn in blocks: never the same slice twice - across threads, and across
a fork (a child that inherited its parent's block must not hand out the parent's next
nonce)."""

from __future__ import annotations

import os
import threading

import pytest

from common.entropy import random_bytes


def test_draws_are_fresh_and_of_the_asked_size() -> None:
    draws = [random_bytes(12) for _ in range(3000)]  # spans several blocks
    assert {len(d) for d in draws} == {12}
    assert len(set(draws)) == len(draws)
    with pytest.raises(ValueError):
        random_bytes(0)
    with pytest.raises(ValueError):
        random_bytes(4097)


def test_threads_never_get_the_same_slice() -> None:
    got: list[list[bytes]] = [[] for _ in range(8)]

    def draw(mine: list[bytes]) -> None:
        mine.extend(random_bytes(8) for _ in range(2000))

    threads = [threading.Thread(target=draw, args=(mine,)) for mine in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [d for mine in got for d in mine]
    assert len(set(every)) == len(every) == 16000


def test_a_forked_child_does_not_repeat_its_parents_draws() -> None:
    random_bytes(12)  # the parent holds a block with unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw, and leave
        os.write(write, random_bytes(12))
        os._exit(0)
    os.close(write)
    child = os.read(read, 12)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 12
    assert child != random_bytes(12)
