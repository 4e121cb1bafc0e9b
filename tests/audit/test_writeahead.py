"""Write-ahead and fail-closed behaviour, group commit, and several replicas on one store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from audit import AuditLog, AuditUnavailable, Outcome
from audit.errors import LockTimeout, LockWait
from tests.audit.conftest import (
    EMAIL_AFTER,
    crash_writer,
    make_intent,
    printed_then_killed,
    reset_pg,
    sql,
)


async def _crash_after_begin(store_url: str, keys: dict[str, bytes], n: int) -> list[str]:
    """Write ``n`` intents and stop without outcomes, as a process killed mid-request."""
    log = await AuditLog.open(store_url, **keys)
    try:
        return [await log.begin(make_intent(str(3000 + i))) for i in range(n)]
    finally:
        await log.close()


async def test_reconcile_closes_dangling_intents_as_unknown(
    store_url: str, keys: dict[str, bytes]
) -> None:
    dangling = await _crash_after_begin(store_url, keys, 2)
    log = await AuditLog.open(store_url, **keys)
    try:
        in_flight = await log.begin(make_intent("3999"))  # this process's own: left alone
        assert await log.reconcile() == 2
        assert await log.reconcile() == 0
        for intent_id in dangling:
            page = await log.query(customer_id=(await log.get(intent_id))["customer_id"])
            outcome = page.entries[0]
            assert (outcome["intent_id"], outcome["outcome"]) == (intent_id, "unknown")
            assert "reconciled" in outcome["reason"]
        await log.finish(in_flight, Outcome("applied"))
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_reconcile_asks_the_resolver_with_the_intended_values(
    store_url: str, keys: dict[str, bytes]
) -> None:
    (dangling,) = await _crash_after_begin(store_url, keys, 1)
    asked: list[tuple[str, str, dict[str, Any]]] = []

    async def resolver(system: str, customer_id: str, after: Mapping[str, Any]) -> str:
        asked.append((system, customer_id, dict(after)))
        return "applied"

    log = await AuditLog.open(store_url, **keys)
    try:
        assert await log.reconcile(resolver) == 1
        assert asked[0][:2] == ("billbee", "3000")
        assert asked[0][2]["Email"] == EMAIL_AFTER
        page = await log.query(customer_id="3000")
        assert (page.entries[0]["intent_id"], page.entries[0]["outcome"]) == (dangling, "applied")
    finally:
        await log.close()


async def test_reconcile_survives_a_failing_resolver(
    store_url: str, keys: dict[str, bytes]
) -> None:
    await _crash_after_begin(store_url, keys, 1)

    async def resolver(system: str, customer_id: str, after: Mapping[str, Any]) -> str:
        raise ConnectionError("upstream down")

    log = await AuditLog.open(store_url, **keys)
    try:
        assert await log.reconcile(resolver) == 1
        assert (await log.query(customer_id="3000")).entries[0]["outcome"] == "unknown"
    finally:
        await log.close()


async def test_store_that_cannot_take_the_intent_raises_audit_unavailable(
    audit_log: AuditLog, store_url: str
) -> None:
    await audit_log.record(make_intent(), Outcome("applied"))
    await sql(store_url, "ALTER TABLE audit_entry RENAME TO audit_entry_gone")
    try:
        with pytest.raises(AuditUnavailable):
            await audit_log.begin(make_intent())
    finally:
        await sql(store_url, "ALTER TABLE audit_entry_gone RENAME TO audit_entry")
    assert await audit_log.ping()
    await audit_log.begin(make_intent())  # the store recovered: appends resume
    report = await audit_log.verify()
    assert report.ok and report.entries == 2


async def test_unreachable_store_raises_audit_unavailable(keys: dict[str, bytes]) -> None:
    for create in (False, True):
        with pytest.raises(AuditUnavailable):
            await AuditLog.open(
                "postgresql+asyncpg://postgres@127.0.0.1:1/test", create=create, **keys
            )


async def test_closed_log_refuses_and_is_not_ready(audit_log: AuditLog) -> None:
    assert await audit_log.ping()
    await audit_log.close()
    assert not await audit_log.ping()
    with pytest.raises(AuditUnavailable):
        await audit_log.begin(make_intent())


async def test_concurrent_appends_are_group_committed(
    store_url: str, keys: dict[str, bytes]
) -> None:
    batches: list[int] = []
    log = await AuditLog.open(store_url, on_batch=lambda n, _s: batches.append(n), **keys)
    try:
        ids = await asyncio.gather(
            *(log.record(make_intent(str(i % 17)), Outcome("applied")) for i in range(300))
        )
        assert len(set(ids)) == 300
        assert sum(batches) == 300
        assert max(batches) > 1  # several callers shared one transaction
        seqs = await sql(store_url, "SELECT seq FROM audit_entry ORDER BY seq")
        assert [int(s[0]) for s in seqs] == list(range(1, 301))
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_two_replicas_keep_one_chain(store_url: str, keys: dict[str, bytes]) -> None:
    first = await AuditLog.open(store_url, **keys)
    second = await AuditLog.open(store_url, **keys)
    try:

        async def writes(log: AuditLog, tag: str) -> list[str]:
            return list(await asyncio.gather(*(
                log.record(make_intent(str(i % 5), request_id=f"{tag}{i}"), Outcome("applied"))
                for i in range(150)
            )))  # fmt: skip

        a, b = await asyncio.gather(writes(first, "a"), writes(second, "b"))
        report = await first.verify()
        assert (report.ok, report.entries) == (True, 300)
        assert (await second.verify()).head == report.head
        # both replicas' sealed values open: one data key per subject, shared
        keys_rows = await sql(store_url, "SELECT count(*) FROM audit_subject_key")
        assert int(keys_rows[0][0]) == 5
        for audit_id in (a[0], b[-1]):
            clear, _ = await second.reveal(audit_id, actor="o", roles=("privacy_officer",),
                                           reason="check", request_id="r")  # fmt: skip
            assert clear["after"]["Email"] == EMAIL_AFTER
    finally:
        await first.close()
        await second.close()


async def test_subject_lock_serialises_across_instances(
    store_url: str, keys: dict[str, bytes]
) -> None:
    first = await AuditLog.open(store_url, **keys)
    second = await AuditLog.open(store_url, **keys)
    # on SQLite one process is the deployment: the lock is in-process
    contender = second if store_url.startswith("postgresql") else first
    order: list[str] = []
    try:
        async with first.subject_lock("billbee", "1002"):
            waiter = asyncio.create_task(_locked(contender, order))
            await asyncio.sleep(0.2)
            assert order == []  # still waiting for the holder
            async with contender.subject_lock("billbee", "1003"):
                order.append("other subject")
            order.append("holder done")
        await waiter
        assert order == ["other subject", "holder done", "contender"]
    finally:
        await first.close()
        await second.close()


async def _locked(log: AuditLog, order: list[str]) -> None:
    async with log.subject_lock("billbee", "1002"):
        order.append("contender")


async def test_many_locked_subjects_can_still_append(audit_log: AuditLog) -> None:
    """Every request holds its subject's lock while it appends: no pool starvation."""

    async def request(n: int) -> str:
        async with audit_log.subject_lock("billbee", str(n)):
            intent_id = await audit_log.begin(make_intent(str(n)))
            await asyncio.sleep(0.01)
            return await audit_log.finish(intent_id, Outcome("applied"))

    ids = await asyncio.wait_for(asyncio.gather(*(request(n) for n in range(60))), timeout=60)
    assert len(set(ids)) == 60
    assert (await audit_log.verify()).entries == 120


async def test_intents_survive_a_killed_process(store_url: str, keys: dict[str, bytes]) -> None:
    """Write-ahead for real: every id the killed writer printed is in the store."""
    printed = await printed_then_killed(await crash_writer(store_url, keys, 5, "intents"), 5)
    log = await AuditLog.open(store_url, **keys)
    try:
        for audit_id in printed:
            assert (await log.get(audit_id))["phase"] == "intent"
        assert (await log.verify()).ok
        assert await log.reconcile(min_age_seconds=3600) == 0  # too young: maybe in flight
        assert await log.reconcile() == 5
    finally:
        await log.close()


async def test_an_awaited_append_is_already_committed(audit_log: AuditLog, store_url: str) -> None:
    """Each caller's await returns only once its own entry is visible to others."""
    for finished in asyncio.as_completed([audit_log.begin(make_intent(str(n))) for n in range(40)]):
        audit_id = await finished
        rows = await sql(
            store_url, "SELECT count(*) FROM audit_entry WHERE audit_id = $1", audit_id
        )
        assert int(rows[0][0]) == 1


@pytest.mark.postgres
async def test_store_connections_killed_fail_closed_then_recover(
    pg_base_url: str | None, keys: dict[str, bytes]
) -> None:
    """PostgreSQL drops every connection of the gateway: fail closed, then recover."""
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    audit_log = await AuditLog.open(pg_base_url, **keys)
    try:
        await audit_log.record(make_intent(), Outcome("applied"))
        await sql(
            pg_base_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        results: list[str] = []
        for _ in range(4):
            try:
                await audit_log.record(make_intent(), Outcome("applied"))
                results.append("ok")
            except AuditUnavailable:
                results.append("unavailable")
        assert results[-1] == "ok"  # the pool reconnects
        assert set(results) <= {"ok", "unavailable"}
        report = await audit_log.verify()
        assert report.ok and report.entries == 1 + results.count("ok")
    finally:
        await audit_log.close()


async def test_a_customer_lock_in_one_process_is_bounded_and_passes_errors_on(
    store_url: str, keys: dict[str, bytes]
) -> None:
    """The in-process lock: a free one is taken at once, a held one within the wait only
    (LockTimeout), and an error inside the hold leaves by it with both locks released."""
    log = await AuditLog.open(store_url, lock_wait_seconds=0.2, **keys)
    try:
        async with log.subject_lock("billbee", "1002"):
            with pytest.raises(LockTimeout) as caught:
                async with log.subject_lock("billbee", "1002"):
                    pytest.fail("the lock is held by this process")
            assert caught.value.wait is LockWait.SUBJECT
        with pytest.raises(KeyError):
            async with log.subject_lock("billbee", "1002"):
                raise KeyError("inside the hold")
        async with asyncio.timeout(5):  # released by the error: taken again at once
            async with log.subject_lock("billbee", "1002"):
                pass
    finally:
        await log.close()
