"""Retention of sealed values (audit/retention.py), on both stores: a key per subject and
retention period, destroyed when the period ends; every expiry an ``expire`` entry; the
chain still verifies; an expired value reads ``erased`` with the reason ``retention``;
one process runs the job at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import audit.entries
import audit.keyring
from audit import AuditLog, Intent, Outcome
from audit.retention import EXPIRE_LOCK, RETENTION_ACTOR, sealed_count, slot_expiry
from tests.audit.conftest import EMAIL_AFTER, PHONE_AFTER, make_intent, sql

NOW = datetime.now(UTC)


def at(moment: datetime) -> str:
    return audit.entries.iso(moment)


def kept(intent: Intent, days: int | None) -> Intent:
    return dataclasses.replace(intent, retention_days=days)


async def write_at(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch, moment: datetime, intent: Intent
) -> str:
    """A change (intent and outcome) written as if at ``moment``."""
    with monkeypatch.context() as m:
        m.setattr(audit.entries, "now_iso", lambda: at(moment))
        intent_id = await log.begin(intent)
        await log.finish(intent_id, Outcome("applied"))
    return intent_id


async def reveal(log: AuditLog, audit_id: str) -> dict[str, object]:
    entry, _ = await log.reveal(audit_id, actor="po", roles=("privacy_officer",),
                                reason="retention test", request_id="r")  # fmt: skip
    return entry


def test_a_slot_ends_the_key_period_in_which_the_retention_ends() -> None:
    assert slot_expiry("2026-01-01T10:00:00.000000Z", None, 7) is None
    # due 2026-03-26T10:00 (+84 days); periods of 7 days start on Thursdays (1970-01-01
    # was one), 2026-03-26 among them: the period that holds it ends on 2026-04-02
    assert slot_expiry("2026-01-01T10:00:00.000000Z", 84, 7) == "2026-04-02T00:00:00.000000Z"
    assert slot_expiry("2026-01-01T00:00:00.000000Z", 84, 7) == "2026-03-26T00:00:00.000000Z"
    for hours in range(0, 24 * 21, 5):  # never before the retention ends, at most P after
        t = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(hours=hours)
        end = audit.entries.parse_iso(slot_expiry(at(t), 30, 7) or "")
        assert t + timedelta(days=30) <= end < t + timedelta(days=37)
    assert slot_expiry(at(NOW), 30, 1) != slot_expiry(at(NOW), 31, 1)


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    st.integers(min_value=1, max_value=4000),
    st.integers(min_value=1, max_value=400),
)
def test_a_slot_is_the_same_with_the_remembered_second_as_with_a_full_parse(
    moment: datetime, retention_days: int, period_days: int
) -> None:
    """``slot_expiry`` remembers recent seconds and period ends (issue 11): the same
    answer as the plain formula, first time and again, also on a period's boundary."""
    since = (moment - datetime(1970, 1, 1)).days // period_days * period_days
    edge = datetime(1970, 1, 1) + timedelta(days=since)  # a period's boundary near it
    for when in (moment, moment.replace(microsecond=0), edge - timedelta(days=retention_days)):
        text = audit.entries.iso(when)
        forget = audit.entries.parse_iso(text) + timedelta(days=retention_days)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        periods = math.ceil((forget - epoch) / timedelta(days=period_days))
        plain = audit.entries.iso(epoch + timedelta(days=periods * period_days))
        assert slot_expiry(text, retention_days, period_days) == plain
        assert slot_expiry(text, retention_days, period_days) == plain  # remembered


def test_sealed_values_are_counted_per_side() -> None:
    assert sealed_count({"sealed": {"before": {"A": "x", "B": "y"}, "after": {"A": "z"}}}) == 3
    assert sealed_count({"sealed": None}) == 0 and sealed_count({}) == 0
    # one ciphertext per side, the paths in clear (the audit log's body format 2)
    two = {"sealed": {"before": {"paths": ["A", "B"], "box": "x"},
                      "after": {"paths": ["A"], "box": "y"}}}  # fmt: skip
    assert sealed_count(two) == 3


async def test_a_subject_s_values_go_to_a_key_per_retention_period(
    audit_log: AuditLog, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write_at(audit_log, monkeypatch, NOW - timedelta(days=60), kept(make_intent(), 30))
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))  # same slot
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 1095))
    await write_at(audit_log, monkeypatch, NOW, make_intent())  # no retention
    rows = await sql(store_url, "SELECT expires_at FROM audit_subject_key ORDER BY expires_at")
    ends = [r[0] for r in rows]
    assert len(ends) == 4 and ends.count(None) == 1
    assert sorted(e for e in ends if e) == [
        slot_expiry(at(NOW - timedelta(days=60)), 30, 7), slot_expiry(at(NOW), 30, 7),
        slot_expiry(at(NOW), 1095, 7),
    ]  # fmt: skip


async def test_expiry_forgets_the_values_whose_retention_ended_and_the_chain_verifies(
    audit_log: AuditLog, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await write_at(audit_log, monkeypatch, NOW - timedelta(days=60), kept(make_intent(), 30))
    new = await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))
    other = await write_at(audit_log, monkeypatch, NOW - timedelta(days=60),
                           kept(make_intent("2002"), 365))  # fmt: skip

    preview = await audit_log.expire(dry_run=True)
    assert (preview.ran, preview.dry_run, preview.subjects, preview.keys) == (True, True, 1, 1)
    assert (preview.entries, preview.values) == (1, 4)  # Email and Phone, before and after
    assert preview.audit_ids == ()
    assert (await reveal(audit_log, old))["after"] == {"Email": EMAIL_AFTER, "Phone": PHONE_AFTER,
                                                      "Note": "new note"}  # fmt: skip

    report = await audit_log.expire()
    assert (report.subjects, report.keys, report.entries, report.values) == (1, 1, 1, 4)
    (expire_id,) = report.audit_ids
    entry = await audit_log.get(expire_id)
    assert (entry["action"], entry["actor"], entry["system"], entry["customer_id"]) == (
        "expire", RETENTION_ACTOR, "billbee", "1002")
    assert entry["reason"].startswith("retention: the retention period of 4 sealed value(s)")

    expired = await reveal(audit_log, old)
    assert expired["after"] == {"Email": "erased", "Phone": "erased", "Note": "new note"}
    assert expired["erasure"]["reason"] == "retention"  # type: ignore[index]
    still = await reveal(audit_log, new)
    assert still["after"]["Email"] == EMAIL_AFTER and "erasure" not in still  # type: ignore[index]
    assert (await reveal(audit_log, other))["after"]["Email"] == EMAIL_AFTER  # type: ignore[index]
    assert (await audit_log.verify()).ok
    again = await audit_log.expire()
    assert (again.subjects, again.audit_ids) == (0, ())
    (reason,) = await sql(store_url, "SELECT erased_reason FROM audit_subject_key"
                                     " WHERE wrapped IS NULL")  # fmt: skip
    assert reason == ("retention",)
    # the subject goes on: a new value gets a key of its own and reads in clear
    later = await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))
    assert (await reveal(audit_log, later))["after"]["Email"] == EMAIL_AFTER  # type: ignore[index]


async def test_a_dry_run_by_a_later_date_previews_without_changing_anything(
    audit_log: AuditLog, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))
    before = await sql(store_url, "SELECT count(*) FROM audit_entry")
    assert (await audit_log.expire(now=NOW + timedelta(days=20), dry_run=True)).keys == 0
    preview = await audit_log.expire(now=NOW + timedelta(days=38), dry_run=True)
    assert (preview.subjects, preview.values) == (1, 4)
    assert await sql(store_url, "SELECT count(*) FROM audit_entry") == before
    assert await sql(store_url, "SELECT count(*) FROM audit_subject_key WHERE wrapped IS NULL") \
        == [(0,)]


async def test_values_without_a_retention_are_kept_until_erased(
    audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept_id = await write_at(audit_log, monkeypatch, NOW - timedelta(days=4000), make_intent())
    report = await audit_log.expire(now=NOW + timedelta(days=40000))
    assert (report.keys, report.without_retention) == (0, 1)
    assert report.oldest_sealed is not None
    assert (await reveal(audit_log, kept_id))["after"]["Email"] == EMAIL_AFTER  # type: ignore[index]
    await audit_log.erase("billbee", "1002", actor="po", roles=("privacy_officer",),
                          reason="Art. 17", request_id="r")  # fmt: skip
    erased = await reveal(audit_log, kept_id)
    assert erased["after"]["Email"] == "erased"  # type: ignore[index]
    assert erased["erasure"]["reason"] == "request"  # type: ignore[index]
    assert (await audit_log.expire()).oldest_sealed is None


async def test_an_export_tells_which_values_expired(
    audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write_at(audit_log, monkeypatch, NOW - timedelta(days=60), kept(make_intent(), 30))
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))
    await audit_log.expire()
    entries, _ = await audit_log.export_subject(
        "billbee", "1002", actor="po", roles=("privacy_officer",), request_id="r"
    )
    intents = [e for e in entries if e["phase"] == "intent"]
    assert [e.get("erasure", {}).get("reason") for e in intents] == ["retention", None]
    assert [e["after"]["Email"] for e in intents] == ["erased", EMAIL_AFTER]
    assert entries[-1]["action"] == "expire"  # read before the export records itself


async def test_one_process_runs_the_job_at_a_time(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await AuditLog.open(store_url, **keys)
    second = await AuditLog.open(store_url, **keys)
    try:
        for n in range(40):
            await write_at(first, monkeypatch, NOW - timedelta(days=60),
                           kept(make_intent(str(3000 + n)), 30))  # fmt: skip
        # while one process holds the job, another skips its run and changes nothing
        async with first._backend.job_lock(EXPIRE_LOCK) as held:
            assert held is True
            skipped = await second.expire()
            assert (skipped.ran, skipped.subjects, skipped.audit_ids) == (False, 0, ())
            assert skipped.oldest_sealed is not None  # it still reports what it can read
        # both at once: each subject expires once, whoever runs
        reports = await asyncio.gather(first.expire(), second.expire(), first.expire())
        assert sum(r.subjects for r in reports) == 40
        rows = await sql(store_url, "SELECT customer_id FROM audit_entry WHERE action = 'expire'")
        assert sorted(r[0] for r in rows) == sorted(str(3000 + n) for n in range(40))
        assert (await first.verify()).ok and (await second.verify()).ok
    finally:
        await first.close()
        await second.close()


async def test_a_process_keeps_sealing_after_another_expired_its_subject(
    store_url: str, keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await AuditLog.open(store_url, **keys)
    job = await AuditLog.open(store_url, **keys)
    try:
        old = await write_at(writer, monkeypatch, NOW - timedelta(days=60), kept(make_intent(), 30))
        assert (await job.expire()).keys == 1
        new = await write_at(writer, monkeypatch, NOW, kept(make_intent(), 30))
        assert (await reveal(job, old))["after"]["Email"] == "erased"  # type: ignore[index]
        assert (await reveal(job, new))["after"]["Email"] == EMAIL_AFTER  # type: ignore[index]
    finally:
        await writer.close()
        await job.close()


async def test_the_key_cache_drops_slots_it_no_longer_uses(
    audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = audit_log._writer._keyring
    await write_at(audit_log, monkeypatch, NOW - timedelta(days=60), kept(make_intent(), 30))
    assert len(ring.cached) == 1
    monkeypatch.setattr(audit.keyring, "PRUNE_SECONDS", 0.0)
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))  # prunes, then uses
    await write_at(audit_log, monkeypatch, NOW, kept(make_intent(), 30))  # prunes the old slot
    assert [slot[2] for slot in ring.cached] == [slot_expiry(at(NOW), 30, 7)]


async def test_a_retention_of_zero_or_a_non_integer_is_refused(audit_log: AuditLog) -> None:
    for days in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="retention_days"):
            await audit_log.begin(kept(make_intent(), days))  # type: ignore[arg-type]
