"""Retention through the gateway: the policy's retention reaches the audit log with every
change, the expiry job runs by itself (and with several replicas on one PostgreSQL, one at
a time), an expired value reads ``erased`` with the reason ``retention``, the chain
still verifies, the metrics tell; and ``gdpr-gateway audit expire --dry-run|--apply``."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import audit.entries
from audit import AuditLog, Outcome, open_demo_state
from audit.retention import RETENTION_ACTOR, slot_expiry
from service.cli import main
from service.settings import Settings
from tests.audit.conftest import make_intent, sql
from tests.service.conftest import AUDITOR, EDITOR, PRIVACY, Stack, make_stack

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=1200)  # past billbee's 1095 days for contact data


def fast_job(settings: Settings) -> Settings:
    return dataclasses.replace(settings, audit_expire_seconds=0.1)


@pytest.fixture
async def fast_stack(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in make_stack(aiohttp_client, tmp_path, tweak=fast_job):
        yield s


async def patch_at(
    stack: Stack, moment: datetime, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    cid: str = "1002", purpose: str = "customer_service",
) -> str:  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(audit.entries, "now_iso", lambda: audit.entries.iso(moment))
        response = await stack.client.patch(
            f"/v1/systems/billbee/customers/{cid}", json=body,
            headers={**EDITOR, "X-Purpose": purpose},
        )
    assert response.status == 200, await response.text()
    audit_id: str = (await response.json())["audit_id"]
    return audit_id


async def wait_for(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll ``check`` (a store query: nothing to wait on but time) until it holds."""
    async with asyncio.timeout(seconds):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.05)


def sample(stack: Stack, name: str, **labels: str) -> float:
    return stack.registry.get_sample_value(name, labels) or 0.0


async def test_each_change_carries_its_policy_s_retention_to_the_audit_log(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = await patch_at(stack, NOW, {"Email": "ret.one@example.org"}, monkeypatch)
    vat = await patch_at(stack, NOW, {"VatId": "DE987654321"}, monkeypatch, purpose="billing")
    url = stack.settings.audit_url
    rows = await sql(url, "SELECT expires_at FROM audit_subject_key ORDER BY expires_at")
    entry_time = {}
    for audit_id in (email, vat):
        entry_time[audit_id] = (await stack.audit.get(audit_id))["time"]
    period = stack.settings.audit_key_period_days
    assert [r[0] for r in rows] == [
        slot_expiry(entry_time[email], 1095, period),  # contact data: 3 years
        slot_expiry(entry_time[vat], 3650, period),  # a VAT id: a tax record, 10 years
    ]


async def test_the_job_runs_by_itself_and_an_expired_value_reads_erased_retention(
    fast_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = fast_stack
    old = await patch_at(stack, LONG_AGO, {"Tel1": "+49 30 7770001"}, monkeypatch)
    new = await patch_at(stack, NOW, {"Tel1": "+49 30 7770002"}, monkeypatch)

    async def expired() -> Any:
        page = await stack.audit.query(customer_id="1002", system="billbee")
        return [e for e in page.entries if e["action"] == "expire"]

    (entry,) = await wait_for(expired)
    assert entry["actor"] == RETENTION_ACTOR and entry["reason"].startswith("retention: ")
    listed = await (await stack.client.get(
        "/v1/audit/changes", params={"system": "billbee", "customer_id": "1002",
                                     "order": "oldest"}, headers=AUDITOR,
    )).json()  # fmt: skip
    actions = [r["action"] for r in listed["changes"]]
    assert actions.count("expire") == 1 and actions.index("expire") > 0  # after the old change

    revealed = await stack.client.post(f"/v1/audit/{old}/reveal", json={"reason": "check"},
                                       headers=PRIVACY)  # fmt: skip
    body = await revealed.json()
    assert body["entry"]["after"]["Tel1"] == "erased"
    assert body["entry"]["erasure"]["reason"] == "retention"
    fresh = await (await stack.client.post(f"/v1/audit/{new}/reveal", json={"reason": "check"},
                                           headers=PRIVACY)).json()  # fmt: skip
    assert fresh["entry"]["after"]["Tel1"] == "+49 30 7770002" and "erasure" not in fresh["entry"]
    verify = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert verify["ok"] is True

    assert sample(stack, "gdpr_gateway_audit_values_expired_total") == 2  # before and after
    assert sample(stack, "gdpr_gateway_audit_expiry_runs_total", result="ran") >= 1
    age = sample(stack, "gdpr_gateway_audit_oldest_sealed_value_age_seconds")
    assert 0 <= age < 3600  # the old value is gone: the oldest readable is the new one
    metrics = await (await stack.client.get("/metrics")).text()
    assert "gdpr_gateway_audit_oldest_sealed_value_age_seconds" in metrics


async def test_without_expire_seconds_the_gateway_runs_no_job(
    aiohttp_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_job(settings: Settings) -> Settings:
        return dataclasses.replace(settings, audit_expire_seconds=0)

    async for stack in make_stack(aiohttp_client, tmp_path, tweak=no_job):
        await patch_at(stack, LONG_AGO, {"Tel1": "+49 30 7770003"}, monkeypatch)
        await asyncio.sleep(0.3)
        assert sample(stack, "gdpr_gateway_audit_expiry_runs_total", result="ran") == 0
        assert (await stack.audit.expire(dry_run=True)).subjects == 1


@pytest.mark.postgres
async def test_replicas_on_one_postgresql_expire_each_subject_once(
    aiohttp_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"ret_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        keys = {"audit_master_key": None, "audit_signing_key": None}

        def shared(settings: Settings) -> Settings:  # one store, one set of keys
            for key in keys:
                keys[key] = keys[key] or getattr(settings, key)
            return dataclasses.replace(fast_job(settings), **keys)  # type: ignore[arg-type]

        async for first in make_stack(aiohttp_client, tmp_path / "a", audit_url=url,
                                      tweak=shared):  # fmt: skip
            async for second in make_stack(aiohttp_client, tmp_path / "b", audit_url=url,
                                           tweak=shared):  # fmt: skip
                for n in range(12):
                    replica = (first, second)[n % 2]
                    await patch_at(replica, LONG_AGO, {"Tel1": f"+49 30 77710{n:02d}"},
                                   monkeypatch, cid=str(100000 + n))  # fmt: skip

                async def all_expired() -> bool:
                    rows = await sql(url, "SELECT count(*) FROM audit_entry"
                                          " WHERE action = 'expire'")  # fmt: skip
                    return int(rows[0][0]) >= 12

                await wait_for(all_expired)
                await asyncio.sleep(0.5)  # more runs of both replicas: nothing twice
                rows = await sql(url, "SELECT customer_id, count(*) FROM audit_entry"
                                      " WHERE action = 'expire' GROUP BY customer_id")  # fmt: skip
                assert sorted(rows) == [(str(100000 + n), 1) for n in range(12)]
                runs = [sample(s, "gdpr_gateway_audit_expiry_runs_total", result="ran")
                        for s in (first, second)]  # fmt: skip
                assert all(r >= 1 for r in runs)
                expired = sum(sample(s, "gdpr_gateway_audit_values_expired_total")
                              for s in (first, second))  # fmt: skip
                assert expired == 24  # Tel1 before and after, twelve subjects, counted once
                assert (await first.audit.verify()).ok
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# -- gdpr-gateway audit expire -------------------------------------------------------------


def _fill_old(state: Path) -> None:
    url, master, signing = open_demo_state(state)

    async def run() -> None:
        log = await AuditLog.open(url, master_key=master, signing_key=signing)
        try:
            for cid, moment in (("1", LONG_AGO), ("2", LONG_AGO), ("3", NOW)):
                original = audit.entries.now_iso
                audit.entries.now_iso = lambda moment=moment: audit.entries.iso(moment)  # type: ignore[assignment]
                try:
                    intent = dataclasses.replace(make_intent(cid), retention_days=1095)
                    await log.finish(await log.begin(intent), Outcome("applied"))
                finally:
                    audit.entries.now_iso = original  # type: ignore[assignment]
            await log.record(make_intent("4"), Outcome("applied"))  # no retention
        finally:
            await log.close()

    asyncio.run(run())


def test_the_command_previews_then_applies_and_verify_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["db", "upgrade", "--state-dir", str(state)]) == 0
    _fill_old(state)
    capsys.readouterr()
    assert main(["audit", "expire", "--dry-run", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "would expire: 8 sealed value(s) in 2 entries, 2 key(s) of 2 subject(s)" in out
    assert "keys without retention (kept until erased): 1" in out
    later = (NOW + timedelta(days=1200)).date().isoformat()
    assert main(["audit", "expire", "--dry-run", "--at", later, "--state-dir", str(state)]) == 0
    assert "would expire: 12 sealed value(s) in 3 entries" in capsys.readouterr().out
    assert main(["audit", "expire", "--apply", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "expired: 8 sealed value(s) in 2 entries" in out
    assert "audit entries written: 2 (action expire)" in out
    assert main(["audit", "expire", "--apply", "--state-dir", str(state)]) == 0
    assert "expired: 0 sealed value(s)" in capsys.readouterr().out
    assert main(["audit", "verify", "--state-dir", str(state)]) == 0
    assert "chain OK" in capsys.readouterr().out


def test_the_command_refuses_a_later_date_with_apply_and_needs_a_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["db", "upgrade", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    later = ["--at", "2099-01-01"]
    assert main(["audit", "expire", "--apply", *later, "--state-dir", str(state)]) == 2
    assert "--at previews a later date" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["audit", "expire", "--state-dir", str(state)])
    assert exited.value.code == 2
    assert "one of the arguments --dry-run --apply is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", "expire", "--dry-run", "--at", "someday", "--state-dir", str(state)])
    assert "expected an ISO 8601 date" in capsys.readouterr().err
