"""``finish(..., durable=False)``: the outcome is checked and queued, and the call
returns without waiting for it; its batch commits without a sync of its own. What can be
lost is that outcome only - never the intent - and the reconciler closes the intent from
the upstream: after a store failure (next tick) and after a crash (next start)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping

import pytest

from audit import AuditLog, EntryNotFound, Outcome
from tests.audit.conftest import crash_writer, make_intent, sql
from tests.audit.test_store_outage import proxied_url, proxy  # noqa: F401 - fixtures
from tests.faultproxy import FaultProxy


async def _applied(system: str, customer_id: str, after: Mapping[str, object]) -> str:
    return "applied"  # the upstream shows the intended values


async def test_a_lazy_outcome_returns_at_once_and_is_written_with_a_later_commit(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, checkpoint_every=1, **keys)
    try:
        intent_id = await log.begin(make_intent())
        call = log.finish(intent_id, Outcome("applied", upstream_status=200), durable=False)
        with pytest.raises(StopIteration) as returned:
            call.send(None)  # it never waited: done on its first step
        outcome_id = returned.value.value
        await log.record(make_intent("1003"), Outcome("applied"))  # a durable commit
        outcome = await log.get(outcome_id)
        assert (outcome["intent_id"], outcome["outcome"]) == (intent_id, "applied")
        assert await sql(store_url, "SELECT count(*) FROM audit_open_intent") == [(0,)]
        assert await log.reconcile() == 0
        report = await log.verify()
        assert report.ok and report.entries == 3
        # a signed checkpoint is never written by a commit that is not durable
        seqs = [int(r[0]) for r in await sql(store_url, "SELECT seq FROM audit_checkpoint")]
        assert 1 in seqs and 2 not in seqs
    finally:
        await log.close()


@pytest.mark.postgres
async def test_a_lazy_outcome_the_store_could_not_take_is_reconciled_next_tick(
    proxy: FaultProxy,  # noqa: F811 - the fixture
    proxied_url: str,  # noqa: F811 - the fixture
    pg_base_url: str,
    keys: dict[str, bytes],
) -> None:
    log = await AuditLog.open(proxied_url, **keys)
    try:
        intent_id = await log.begin(make_intent())
        await proxy.down()
        outcome_id = await log.finish(intent_id, Outcome("applied"), durable=False)
        for _ in range(200):  # the writer tries, fails, and hands the intent to reconcile
            if intent_id in log._intents.unrecorded:
                break
            await asyncio.sleep(0.05)
        assert intent_id in log._intents.unrecorded
        await proxy.up()
        assert await log.reconcile(_applied, min_age_seconds=3600) == 1
        with pytest.raises(EntryNotFound):
            await log.get(outcome_id)
        closing = (await log.query(customer_id="1002")).entries[0]
        assert (closing["intent_id"], closing["outcome"]) == (intent_id, "applied")
        assert "reconciled" in closing["reason"]
        assert await sql(pg_base_url, "SELECT count(*) FROM audit_open_intent") == [(0,)]
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_a_crash_loses_the_queued_outcome_and_the_reconciler_closes_its_intent(
    store_url: str, keys: dict[str, bytes]
) -> None:
    proc = await crash_writer(store_url, keys, 0, "lazy-outcome")
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == -signal.SIGKILL
    intent_id, outcome_id = out.decode().split()
    log = await AuditLog.open(store_url, **keys)
    try:
        assert (await log.get(intent_id))["phase"] == "intent"  # the intent was durable
        with pytest.raises(EntryNotFound):  # the outcome was still queued
            await log.get(outcome_id)
        assert await log.reconcile(_applied) == 1
        closing = (await log.query(customer_id="8100")).entries[0]
        assert (closing["intent_id"], closing["outcome"]) == (intent_id, "applied")
        assert (await log.verify()).ok
    finally:
        await log.close()
