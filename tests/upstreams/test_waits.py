"""The upstream client's waits (service/upstreams/waits.py) on a real event loop: the
shared deadline timer and the connection slots. The client's own tests (test_client,
test_transport) run them on the wire; these pin the orders and races a wire test cannot
produce on demand."""

from __future__ import annotations

import asyncio

import pytest

from service.upstreams.waits import Deadlines, Slots


async def test_deadlines_time_out_in_order_and_spare_what_is_done() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    now = loop.time()
    answered, late, later = (loop.create_future() for _ in range(3))
    failed: list[str] = []
    late.add_done_callback(lambda _: failed.append("late"))
    later.add_done_callback(lambda _: failed.append("later"))
    assert deadlines.add(loop, now + 0.02, answered) is None
    assert deadlines.add(loop, now + 0.04, late) is None
    assert deadlines.add(loop, now + 0.08, later) is None
    answered.set_result("in time")
    for future in (late, later):
        with pytest.raises(TimeoutError):
            await future
    assert answered.result() == "in time"
    assert failed == ["late", "later"]
    deadlines.close()


async def test_an_earlier_deadline_added_later_gets_its_own_timer() -> None:
    """A request that waited for a connection adds a deadline earlier than one already
    queued: it must not wait for the later one's timer."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    now = loop.time()
    queued, waited = loop.create_future(), loop.create_future()
    assert deadlines.add(loop, now + 30.0, queued) is None
    own = deadlines.add(loop, now + 0.02, waited)
    assert own is not None
    with pytest.raises(TimeoutError):
        await waited
    assert not queued.done()  # its deadline is far off
    deadlines.close()
    own.cancel()


async def test_closed_deadlines_time_nothing_out() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    waiter = loop.create_future()
    deadlines.add(loop, loop.time() + 0.01, waiter)
    deadlines.close()
    await asyncio.sleep(0.05)
    assert not waiter.done()


async def test_slots_are_handed_over_first_come_first_served() -> None:
    slots = Slots(1)
    assert slots.take() and not slots.take()
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.wait()
        order.append(name)

    first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    assert not slots.take()  # none free, two waiting
    slots.give()
    await first
    slots.give()
    await second
    assert order == ["first", "second"]
    slots.give()
    assert slots.take()  # the one slot is free again, and only one
    assert not slots.take()


async def test_a_slot_handed_to_a_cancelled_wait_goes_to_the_next() -> None:
    slots = Slots(1)
    assert slots.take()
    first, second = asyncio.create_task(slots.wait()), asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    slots.give()  # to the first wait ...
    first.cancel()  # ... cancelled before it could run: the slot passes on
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert not slots.take()  # the second holds it
    slots.give()
    assert slots.take()


async def test_a_cancelled_wait_dropped_by_give_leaves_the_count_right() -> None:
    """A wait is cancelled, and a slot is given back before the cancelled task runs:
    the give skips the cancelled wait and frees the slot; the wait then ends without
    an error of its own."""
    slots = Slots(1)
    assert slots.take()
    waiting = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    waiting.cancel()
    slots.give()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert slots.take()
    assert not slots.take()


async def test_answers_done_behind_a_slow_request_are_not_kept() -> None:
    """One slow request at the front of the queue (its deadline far off) must not keep
    every answer that arrived after it: each done future holds its whole answer, and at
    thousands of calls a second that is megabytes per second of the timeout."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    now = loop.time()
    slow = loop.create_future()
    deadlines.add(loop, now + 30.0, slow)
    for i in range(5_000):
        answered = loop.create_future()
        deadlines.add(loop, now + 30.0 + i / 1e6, answered)
        answered.set_result(b"answer")
    assert deadlines.pending() <= 2 * Deadlines.COMPACT_AT
    assert not slow.done()
    deadlines.close()
