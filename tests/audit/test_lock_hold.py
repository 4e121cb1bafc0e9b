"""A customer's lock as a plain async context manager (audit/locks.py ``_Hold``, and on
PostgreSQL audit/store_pg.py ``_SubjectLock``): no async generator per change (issue 11),
and the same bookkeeping on every way out - released after the block, after an error in
it and after a wait given up, so that the process keeps no entry for a customer no one
holds or waits for."""

from __future__ import annotations

import asyncio

import pytest

from audit import AuditLog
from audit.errors import LockTimeout


def _asyncgens() -> int:
    """Async generators the running asyncio loop tracks (one per ``asynccontextmanager``
    use while it runs)."""
    gens = getattr(asyncio.get_running_loop(), "_asyncgens", None)
    if gens is None:
        pytest.skip("this event loop does not expose its async generators")
    return len(gens)


async def test_a_hold_runs_no_async_generator(store_url: str, keys: dict[str, bytes]) -> None:
    log = await AuditLog.open(store_url, **keys)
    try:
        before = _asyncgens()
        async with log.subject_lock("billbee", "1002"):
            assert _asyncgens() == before  # neither ours nor the store's lock is one
        assert _asyncgens() == before
    finally:
        await log.close()


async def test_no_entry_is_left_on_any_way_out(store_url: str, keys: dict[str, bytes]) -> None:
    log = await AuditLog.open(store_url, lock_wait_seconds=0.2, **keys)
    locks = log._locks._locks
    try:
        async with log.subject_lock("billbee", "1002"):
            assert set(locks) == {("billbee", "1002")}
            with pytest.raises(LockTimeout):
                async with log.subject_lock("billbee", "1002"):
                    pytest.fail("the lock is held by this process")
            assert not locks[("billbee", "1002")]  # the waiter that gave up is gone
        assert locks == {}
        with pytest.raises(KeyError):
            async with log.subject_lock("billbee", "1002"):
                raise KeyError("inside the hold")
        assert locks == {}
        first = asyncio.Event()

        async def hold_then_release() -> None:
            async with log.subject_lock("billbee", "1003"):
                first.set()
                await asyncio.sleep(0.05)

        holder = asyncio.create_task(hold_then_release())
        await first.wait()
        async with log.subject_lock("billbee", "1003"):  # waits for the holder, shares the lock
            assert holder.done()
        assert locks == {}
    finally:
        await log.close()


@pytest.mark.parametrize("released_first", [False, True])
async def test_a_waiter_cancelled_as_it_is_handed_the_lock_passes_it_on(
    store_url: str, keys: dict[str, bytes], released_first: bool
) -> None:
    """A waiter cancelled in the same step as the holder releases - just before the
    release, or just after it handed that waiter the lock - neither keeps the lock nor
    loses it: the next waiter gets it, and nothing is left once all are done."""
    log = await AuditLog.open(store_url, **keys)
    locks = log._locks._locks
    subject = ("billbee", "1004")
    order: list[str] = []
    queued = asyncio.Event()
    waiting: dict[str, asyncio.Task[None]] = {}

    held = asyncio.Event()

    async def hold(name: str) -> None:
        async with log.subject_lock(*subject):
            order.append(name)
            held.set()
            if name != "holder":
                return
            await queued.wait()
            if not released_first:
                waiting["first"].cancel()
        if released_first:  # the release handed ``first`` the lock; it has not run yet
            waiting["first"].cancel()

    try:
        holder = asyncio.create_task(hold("holder"))
        await held.wait()
        for name in ("first", "second"):
            waiting[name] = asyncio.create_task(hold(name))
        await asyncio.sleep(0)  # each queues for the lock held by ``holder``
        assert len(locks[subject]) == 2
        queued.set()
        await asyncio.wait([holder, *waiting.values()], timeout=5)
        assert waiting["first"].cancelled() and waiting["second"].done()
        assert not waiting["second"].cancelled() and waiting["second"].exception() is None
        assert order == ["holder", "second"]
        assert locks == {}
    finally:
        await log.close()
