"""Bigger group commits under load (audit.writer: UNDER_LOAD, GATHER, GATHER_SECONDS; issue
11): once a batch held ``UNDER_LOAD`` entries or more, the writer waits for company before
it takes the next - until ``GATHER`` entries are queued, ``GATHER_SECONDS`` have passed, a
read flushes or the log closes - so that a loaded gateway commits (and syncs) fewer,
larger batches. One append at a time never waits. Real stores; timings only as bounds."""

from __future__ import annotations

import asyncio

import pytest

from audit import AuditLog, Outcome, writer
from tests.audit.conftest import make_intent, sql


async def _open_log(store_url: str, keys: dict[str, bytes], batches: list[int]) -> AuditLog:
    log = await AuditLog.open(store_url, on_batch=lambda n, _s: batches.append(n), **keys)
    await log.begin(make_intent("1001"))  # the subject's key cached
    batches.clear()
    return log


def _records(log: AuditLog, count: int) -> list[asyncio.Task[str]]:
    """``count`` appends queued at once (in one turn of the loop)."""
    return [
        asyncio.create_task(log.record(make_intent("1001"), Outcome("applied")))
        for _ in range(count)
    ]


async def _entries(url: str) -> int:
    return int((await sql(url, "SELECT count(*) FROM audit_entry"))[0][0])


async def test_under_load_the_next_batch_waits_for_gather_entries(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "GATHER_SECONDS", 30.0)
    monkeypatch.setattr(writer, "GATHER", 6)
    batches: list[int] = []
    log = await _open_log(store_url, keys, batches)
    try:
        await asyncio.wait_for(asyncio.gather(*_records(log, 4)), 10)
        assert batches == [4]  # under load (UNDER_LOAD = 4)
        first = _records(log, 2)
        await asyncio.sleep(0.2)
        assert batches == [4] and not any(t.done() for t in first)  # waiting for company
        assert await _entries(store_url) == 5
        more = _records(log, 4)  # 6 queued: GATHER reached
        await asyncio.wait_for(asyncio.gather(*first, *more), 10)
        assert batches == [4, 6]  # one commit, not 2 + 4
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_gather_seconds_bound_the_wait(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "GATHER_SECONDS", 0.05)
    batches: list[int] = []
    log = await _open_log(store_url, keys, batches)
    try:
        await asyncio.wait_for(asyncio.gather(*_records(log, 4)), 10)
        await asyncio.wait_for(asyncio.gather(*_records(log, 2)), 5)  # alone after 50 ms
        assert batches == [4, 2]
    finally:
        await log.close()


async def test_one_append_at_a_time_never_waits(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "GATHER_SECONDS", 30.0)
    batches: list[int] = []
    log = await _open_log(store_url, keys, batches)
    try:
        for _ in range(3):
            await asyncio.wait_for(log.record(make_intent("1001"), Outcome("applied")), 5)
        assert batches == [1, 1, 1]
    finally:
        await log.close()


async def test_a_flush_or_close_ends_the_wait(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "GATHER_SECONDS", 30.0)
    batches: list[int] = []
    log = await _open_log(store_url, keys, batches)
    await asyncio.wait_for(asyncio.gather(*_records(log, 4)), 10)
    waiting = _records(log, 2)
    await asyncio.sleep(0.1)
    assert batches == [4]
    log._writer.flush()  # what a read does with outcomes queued (audit.settle)
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert batches == [4, 2]
    last = _records(log, 2)
    await asyncio.sleep(0.1)
    await asyncio.wait_for(log.close(), 10)  # close commits what waits
    ids = await asyncio.wait_for(asyncio.gather(*waiting, *last), 5)
    assert len(set(ids)) == 4
    assert await _entries(store_url) == 9


async def test_callers_in_turn_are_not_kept_waiting_for_more_than_come_back(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """N callers appending in turn (each its next entry once the last is committed): at
    most N come back, so the wait ends when the last batch's number is queued - not
    after GATHER_SECONDS each time (make bench's 16 writers fell from ~8,700 to 2,900
    appends/s with a wait for GATHER = 32)."""
    monkeypatch.setattr(writer, "GATHER_SECONDS", 30.0)  # a wait for GATHER would hang
    monkeypatch.setattr(writer, "GATHER", 32)
    batches: list[int] = []
    log = await _open_log(store_url, keys, batches)

    async def caller() -> None:
        for _ in range(3):
            await log.record(make_intent("1001"), Outcome("applied"))

    try:
        await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(8))), 10)
        assert sum(batches) == 24 and max(batches) <= 8
        assert await _entries(store_url) == 25
        assert (await log.verify()).ok
    finally:
        await log.close()
