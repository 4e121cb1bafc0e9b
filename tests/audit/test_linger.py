"""An outcome that need not be durable, queued while the writer is idle, lingers for
the next entry: one change at a time, the next change's intent takes it into its own
commit instead of a commit of its own after the answer (audit.writer, issue 11). A read
of the log, close, or the linger's end writes it without company."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from audit import AuditLog, Outcome, writer
from tests.audit.conftest import make_intent, sql


def _count_trips(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store's transactions of entries as they are asked for: one name per trip."""
    backend, trips = log._backend, []

    def counted(name: str) -> Callable[..., Awaitable[Any]]:
        real = getattr(backend, name)

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            trips.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("append_if_head", "chain"):
        monkeypatch.setattr(backend, name, counted(name))
    return trips


async def _entries(url: str) -> int:
    return int((await sql(url, "SELECT count(*) FROM audit_entry"))[0][0])


async def _until_entries(url: str, count: int) -> int:
    """The store's entry count once it is ``count`` (polled, 4 s at most), else the last seen."""
    for _ in range(200):
        if (seen := await _entries(url)) == count:
            return seen
        await asyncio.sleep(0.02)
    return await _entries(url)


async def test_an_idle_writers_lazy_outcome_joins_the_next_intents_commit(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "LINGER", 30.0, raising=False)
    log = await AuditLog.open(store_url, **keys)
    try:
        intent_id = await log.begin(make_intent())
        trips = _count_trips(log, monkeypatch)
        await log.finish(intent_id, Outcome("applied", upstream_status=200), durable=False)
        await asyncio.sleep(0.05)  # the answer, the client's turn: the writer stays idle
        assert trips == []
        assert await _entries(store_url) == 1
        await log.begin(make_intent("1003"))  # the next change's intent
        assert len(trips) == 1  # one commit for both
        assert await _entries(store_url) == 3
        assert await sql(store_url, "SELECT count(*) FROM audit_open_intent") == [(1,)]
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_a_read_or_close_writes_a_lingering_outcome_at_once(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "LINGER", 30.0, raising=False)
    log = await AuditLog.open(store_url, **keys)
    try:
        first = await log.begin(make_intent())
        outcome_id = await log.finish(first, Outcome("applied"), durable=False)
        await asyncio.sleep(0.05)
        read = await asyncio.wait_for(log.get(outcome_id), 10)  # a read wakes the writer
        assert read["intent_id"] == first
        second = await log.begin(make_intent("1003"))
        await log.finish(second, Outcome("applied"), durable=False)
        await asyncio.sleep(0.05)
        assert await _entries(store_url) == 3
    finally:
        await asyncio.wait_for(log.close(), 10)  # close writes what lingers
    assert await _entries(store_url) == 4
    assert await sql(store_url, "SELECT count(*) FROM audit_open_intent") == [(0,)]


async def test_a_lone_lazy_outcome_is_written_once_its_linger_ends(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, **keys)
    try:
        intent_id = await log.begin(make_intent())
        await log.finish(intent_id, Outcome("applied"), durable=False)
        assert await _until_entries(store_url, 2) == 2
    finally:
        await log.close()


async def test_two_lazy_outcomes_at_once_do_not_linger(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes under way at once: a lingering outcome would only split their intents'
    batch, so the second outcome queued wakes the writer."""
    monkeypatch.setattr(writer, "LINGER", 30.0, raising=False)
    log = await AuditLog.open(store_url, **keys)
    try:
        first, second = await asyncio.gather(
            log.begin(make_intent()), log.begin(make_intent("1003"))
        )
        await log.finish(first, Outcome("applied"), durable=False)
        await asyncio.sleep(0.05)
        assert await _entries(store_url) == 2  # alone: it lingers
        await log.finish(second, Outcome("applied"), durable=False)
        assert await _until_entries(store_url, 4) == 4
    finally:
        await log.close()
