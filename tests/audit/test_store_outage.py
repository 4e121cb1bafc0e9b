"""PostgreSQL going away under the audit log, through a loopback proxy we can cut
(tests/faultproxy.py; the shared server itself is never touched).

Every store failure surfaces as AuditUnavailable; releasing a customer's lock on a dead
connection never raises; an outcome that could not be written is closed by the next
reconcile once the store is back; the wait for a customer's lock is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from audit import AuditLog, AuditUnavailable, Outcome, upgrade
from audit.errors import LockTimeout, LockWait
from tests.audit.conftest import (
    granted_advisory_locks,
    make_intent,
    reset_pg,
    sql,
    until_no_advisory_locks,
)
from tests.faultproxy import FaultProxy


@pytest.fixture
async def proxy(pg_base_url: str | None) -> AsyncIterator[FaultProxy]:
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    async with FaultProxy(5432) as running:
        yield running


@pytest.fixture
def proxied_url(pg_base_url: str, proxy: FaultProxy) -> str:
    return pg_base_url.replace("@127.0.0.1:5432/", f"@{proxy.url_host}/")


@pytest.mark.postgres
async def test_every_store_failure_is_audit_unavailable(
    proxy: FaultProxy, proxied_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(proxied_url, **keys)
    try:
        intent_id = await log.begin(make_intent())
        await proxy.down()
        calls = {
            "subject_lock": _locked(log),
            "begin": log.begin(make_intent()),
            "finish": log.finish(intent_id, Outcome("applied")),
            "record": log.record(make_intent(), Outcome("applied")),
            "query": log.query(customer_id="1002"),
            "get": log.get(intent_id),
            "verify": log.verify(),
            "reconcile": log.reconcile(),
            "erase": log.erase(
                "billbee", "1002", actor="o", roles=("privacy_officer",), reason="asked",
                request_id="r",
            ),
        }
        raised = {}
        for name, call in calls.items():
            try:
                await call
                raised[name] = "no error"
            except Exception as exc:
                raised[name] = type(exc).__name__ if not isinstance(exc, AuditUnavailable) else "ok"
        assert raised == dict.fromkeys(calls, "ok")
        assert not await log.ping()
        await proxy.up()
        await log.record(make_intent(), Outcome("applied"))  # recovered
        assert await log.ping()
    finally:
        await log.close()


async def _locked(log: AuditLog) -> None:
    async with log.subject_lock("billbee", "1002"):
        pass


@pytest.mark.postgres
async def test_losing_the_store_while_a_lock_is_held_raises_nothing_on_release(
    proxy: FaultProxy, proxied_url: str, keys: dict[str, bytes]
) -> None:
    """The advisory lock dies with its session: unlocking a dead connection is a no-op,
    and what the locked block raised is what the caller sees."""
    log = await AuditLog.open(proxied_url, **keys)
    try:
        async with log.subject_lock("billbee", "1002"):
            proxy.cut()
            await asyncio.sleep(0.05)
        with pytest.raises(LookupError):
            async with log.subject_lock("billbee", "1003"):
                proxy.cut()
                await asyncio.sleep(0.05)
                raise LookupError("the block's own error")
        # the lock was not leaked: it can be had again, from this and another process
        async with log.subject_lock("billbee", "1002"):
            pass
        other = await AuditLog.open(proxied_url, **keys)
        try:
            async with asyncio.timeout(5), other.subject_lock("billbee", "1002"):
                pass
        finally:
            await other.close()
    finally:
        await log.close()


@pytest.mark.postgres
async def test_an_outcome_the_store_could_not_take_is_reconciled_next_tick(
    proxy: FaultProxy, proxied_url: str, pg_base_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(proxied_url, **keys)
    try:
        intent_id = await log.begin(make_intent())
        await proxy.down()
        with pytest.raises(AuditUnavailable):
            await log.finish(intent_id, Outcome("applied", upstream_status=200))
        await proxy.up()
        asked: list[str] = []

        async def resolver(system: str, customer_id: str, after: object) -> str:
            asked.append(customer_id)
            return "applied"

        # a periodic tick leaves young intents of other replicas alone, not this one:
        # this process knows it is no longer in flight
        assert await log.reconcile(resolver, min_age_seconds=3600) == 1
        assert asked == ["1002"]
        page = await log.query(customer_id="1002")
        closing = page.entries[0]
        assert (closing["intent_id"], closing["outcome"]) == (intent_id, "applied")
        assert "reconciled" in closing["reason"]
        assert await sql(pg_base_url, "SELECT count(*) FROM audit_open_intent") == [(0,)]
        assert await log.reconcile(resolver) == 0
        assert (await log.verify()).ok
    finally:
        await log.close()


@pytest.mark.postgres
async def test_the_wait_for_a_customer_lock_is_bounded(
    proxied_url: str, keys: dict[str, bytes]
) -> None:
    """A writer queued behind a hung one (same customer, another replica) gives up."""
    timeouts: list[str] = []
    holder = await AuditLog.open(proxied_url, **keys)
    waiter = await AuditLog.open(
        proxied_url, lock_wait_seconds=0.3, on_lock_timeout=timeouts.append, **keys
    )
    try:
        async with holder.subject_lock("billbee", "1002"):  # held throughout
            with pytest.raises(LockTimeout) as caught:
                async with waiter.subject_lock("billbee", "1002"):
                    pytest.fail("the lock is held elsewhere")
            assert isinstance(caught.value, AuditUnavailable)
            assert caught.value.wait is LockWait.SUBJECT
            assert caught.value.retry_after >= 0.3
            async with waiter.subject_lock("billbee", "1003"):  # others are not held up
                pass
        assert timeouts == [LockWait.SUBJECT]
        assert waiter.lock_use() == (0, 24)
        async with waiter.subject_lock("billbee", "1002"):  # and the wait left nothing
            pass
    finally:
        await holder.close()
        await waiter.close()


@pytest.mark.postgres
async def test_more_contended_writers_than_lock_connections_wait_a_bounded_time(
    proxied_url: str, keys: dict[str, bytes]
) -> None:
    """A customer lock no other replica holds takes no lock connection (a shared lock
    session holds it); one held elsewhere is waited for on a lock connection of its own,
    kept while held; with every one of those in use the next such wait gives up
    (CONNECTION)."""
    timeouts: list[str] = []
    replica = await AuditLog.open(proxied_url, **keys)
    log = await AuditLog.open(
        proxied_url, lock_wait_seconds=1.0, lock_connections=2,
        on_lock_timeout=timeouts.append, **keys,
    )  # fmt: skip
    gone = {c: asyncio.Event() for c in "123"}  # the other replica lets go of c
    done = asyncio.Event()  # this one's holders let go

    async def hold(audit_log: AuditLog, customer: str, holds: asyncio.Event) -> None:
        async with audit_log.subject_lock("billbee", customer):
            holds.set()
            await (gone[customer] if audit_log is replica else done).wait()

    async def held(audit_log: AuditLog, customers: str) -> list[asyncio.Task[None]]:
        holding = [asyncio.Event() for _ in customers]
        tasks = [
            asyncio.create_task(hold(audit_log, c, e))
            for c, e in zip(customers, holding, strict=True)
        ]
        await asyncio.gather(*(e.wait() for e in holding))
        return tasks

    tasks = await held(replica, "123")
    try:
        async with (  # free elsewhere: no lock connection
            log.subject_lock("billbee", "4"),
            log.subject_lock("billbee", "5"),
            log.subject_lock("billbee", "6"),
        ):
            assert log.lock_use() == (0, 2)
        waiting = asyncio.create_task(held(log, "12"))
        while log.lock_use() != (2, 2):  # noqa: ASYNC110 - both waits on the server
            await asyncio.sleep(0.01)
        gone["1"].set()
        gone["2"].set()
        tasks += await waiting  # each got its lock once released, and holds it
        assert log.lock_use() == (2, 2)
        with pytest.raises(LockTimeout) as caught:
            async with log.subject_lock("billbee", "3"):
                pytest.fail("held by the other replica")
        assert caught.value.wait is LockWait.CONNECTION
        async with log.subject_lock("billbee", "4"):  # free elsewhere: not held up
            pass
        # appends do not need a lock connection: the log still writes
        await log.record(make_intent("3"), Outcome("rejected", problem_code="x"))
        done.set()
        gone["3"].set()
        await asyncio.gather(*tasks)
        assert log.lock_use() == (0, 2)
        async with log.subject_lock("billbee", "3"):
            pass
        assert timeouts == [LockWait.CONNECTION]
    finally:
        done.set()
        for event in gone.values():
            event.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await log.close()
        await replica.close()


async def test_the_in_process_wait_is_bounded_on_sqlite_too(
    tmp_path: Path, keys: dict[str, bytes]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    await upgrade(url)
    log = await AuditLog.open(url, lock_wait_seconds=0.2, **keys)
    try:
        async with log.subject_lock("billbee", "1002"):
            with pytest.raises(LockTimeout):
                async with log.subject_lock("billbee", "1002"):
                    pytest.fail("held by the outer block")
        async with log.subject_lock("billbee", "1002"):
            pass
        assert log.lock_use() == (0, 0)
    finally:
        await log.close()


@pytest.mark.postgres
async def test_batches_in_flight_when_the_store_is_gone_all_fail_closed(
    proxy: FaultProxy, proxied_url: str, pg_base_url: str, keys: dict[str, bytes]
) -> None:
    """Many appends at once go as two batches in flight: with the store gone, every
    caller gets AuditUnavailable (none hangs, none is half-written), and the log goes on
    once the store is back."""
    log = await AuditLog.open(proxied_url, **keys)
    try:
        await log.record(make_intent(), Outcome("applied"))  # the subject's key is cached
        await proxy.down()
        results = await asyncio.gather(
            *(log.record(make_intent(), Outcome("applied")) for _ in range(150)),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [AuditUnavailable] * 150
        await proxy.up()
        await log.record(make_intent(), Outcome("applied"))
        assert await sql(pg_base_url, "SELECT count(*) FROM audit_entry") == [(2,)]
        assert (await log.verify()).ok
    finally:
        await log.close()


@pytest.mark.postgres
async def test_lock_connections_go_back_to_the_pool_holding_no_lock(
    proxied_url: str, pg_base_url: str, keys: dict[str, bytes]
) -> None:
    """The lock pool sends no reset when a connection goes back (a round trip per
    change saved): each lock is released by its own unlock, and a connection whose
    lock wait was given up is terminated, not pooled - so no lock outlives its holder."""
    holder = await AuditLog.open(proxied_url, **keys)
    waiter = await AuditLog.open(proxied_url, lock_wait_seconds=0.3, **keys)
    try:
        for customer in ("1", "2", "1", "3"):
            async with holder.subject_lock("billbee", customer):
                assert await granted_advisory_locks(pg_base_url) == 1
        await until_no_advisory_locks(pg_base_url)  # connections pooled, none held
        async with holder.subject_lock("billbee", "1002"):
            with pytest.raises(LockTimeout):
                async with waiter.subject_lock("billbee", "1002"):
                    pytest.fail("the lock is held elsewhere")
        await until_no_advisory_locks(pg_base_url)
        async with waiter.subject_lock("billbee", "1002"):
            assert await granted_advisory_locks(pg_base_url) == 1
        await until_no_advisory_locks(pg_base_url)
    finally:
        await holder.close()
        await waiter.close()
