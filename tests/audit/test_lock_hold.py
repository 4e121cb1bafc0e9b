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
            assert locks[("billbee", "1002")][1] == 1  # the waiter that gave up is gone
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
