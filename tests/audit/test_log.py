"""The audit log's write and review paths, on real SQLite files and real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from audit import AuditLog, EntryNotFound, InvalidAuditInput, Outcome
from audit.errors import OutOfScope
from tests.audit.conftest import EMAIL_AFTER, EMAIL_BEFORE, PHONE_AFTER, make_intent, sql

PO = {"actor": "olga", "roles": ("privacy_officer",)}


async def test_begin_then_finish_writes_intent_and_outcome(audit_log: AuditLog) -> None:
    intent_id = await audit_log.begin(make_intent())
    outcome_id = await audit_log.finish(
        intent_id, Outcome("applied", upstream_status=200, upstream_latency_ms=12.5)
    )
    intent = await audit_log.get(intent_id)
    outcome = await audit_log.get(outcome_id)
    assert (intent["phase"], intent["outcome"], intent["action"]) == ("intent", None, "update")
    assert intent["before"] == {"Email": "***", "Phone": "***", "Note": "old note"}
    assert intent["after"] == {"Email": "***", "Phone": "***", "Note": "new note"}
    assert intent["changed"] == ["Email", "Phone", "Note"]
    assert intent["policy_version"] == "sha256:policy-v1"
    assert outcome["phase"] == "outcome"
    assert outcome["intent_id"] == intent_id
    assert (outcome["outcome"], outcome["upstream_status"]) == ("applied", 200)
    assert outcome["upstream_latency_ms"] == 12.5
    for key in ("actor", "system", "customer_id", "request_id", "purpose"):
        assert outcome[key] == intent[key]
    assert outcome["prev_hash"] == intent["hash"]
    assert outcome_id > intent_id  # UUIDv7 sorts by time
    report = await audit_log.verify()
    assert report.ok and report.entries == 2


async def test_record_is_one_entry_with_problem_code(audit_log: AuditLog) -> None:
    audit_id = await audit_log.record(
        make_intent(action="dry_run"), Outcome("rejected", problem_code="field_not_editable")
    )
    entry = await audit_log.get(audit_id)
    assert (entry["action"], entry["phase"], entry["outcome"]) == ("dry_run", "outcome", "rejected")
    assert entry["problem_code"] == "field_not_editable"
    assert entry["intent_id"] is None
    assert entry["before"]["Email"] == "***"


async def test_finish_from_another_process_reads_the_intent(
    audit_log: AuditLog, store_url: str, keys: dict[str, bytes]
) -> None:
    intent_id = await audit_log.begin(make_intent())
    other = await AuditLog.open(store_url, **keys)
    try:
        outcome_id = await other.finish(intent_id, Outcome("upstream_failed", upstream_status=502))
    finally:
        await other.close()
    entry = await audit_log.get(outcome_id)
    assert (entry["intent_id"], entry["actor"]) == (intent_id, "alice")
    with pytest.raises(EntryNotFound):
        await audit_log.finish("no-such-intent", Outcome("applied"))


async def test_bad_input_gets_a_clear_error(audit_log: AuditLog) -> None:
    with pytest.raises(InvalidAuditInput, match="action"):
        await audit_log.begin(make_intent(action="delete"))
    with pytest.raises(InvalidAuditInput, match="outcome"):
        await audit_log.record(make_intent(), Outcome("maybe"))
    with pytest.raises(InvalidAuditInput, match="customer_id"):
        await audit_log.begin(make_intent(customer_id=""))
    with pytest.raises(InvalidAuditInput, match="reason"):
        await audit_log.erase("billbee", "1002", reason="  ", request_id="r", **PO)
    with pytest.raises(InvalidAuditInput, match="limit"):
        await audit_log.query(limit=0)
    with pytest.raises(InvalidAuditInput, match="cursor"):
        await audit_log.query(cursor="abc")
    with pytest.raises(EntryNotFound):
        await audit_log.get("01900000-0000-7000-8000-000000000000")
    from dataclasses import replace

    good = make_intent()
    for bad in (
        replace(good, after={**good.after, "Note": object()}),  # a clear value
        replace(good, after={**good.after, "Email": {1, 2}}),  # a value to seal
    ):
        with pytest.raises(InvalidAuditInput, match="JSON"):
            await audit_log.record(bad, Outcome("applied"))
    assert (await audit_log.verify()).entries == 0  # nothing was written


async def test_reveal_needs_a_reason_and_is_itself_audited(audit_log: AuditLog) -> None:
    intent_id = await audit_log.begin(make_intent())
    with pytest.raises(InvalidAuditInput):
        await audit_log.reveal(intent_id, reason="", request_id="r2", **PO)
    clear, reveal_id = await audit_log.reveal(
        intent_id, reason="ticket DPO-7", request_id="r2", **PO
    )
    assert clear["before"] == {"Email": EMAIL_BEFORE, "Phone": None, "Note": "old note"}
    assert clear["after"] == {"Email": EMAIL_AFTER, "Phone": PHONE_AFTER, "Note": "new note"}
    reveal = await audit_log.get(reveal_id)
    assert (reveal["action"], reveal["reason"], reveal["target_id"]) == (
        "reveal", "ticket DPO-7", intent_id
    )  # fmt: skip
    assert (reveal["actor"], reveal["system"], reveal["customer_id"]) == ("olga", "billbee", "1002")


async def test_query_filters_and_pages_newest_first(audit_log: AuditLog) -> None:
    ids = []
    for n in range(7):
        intent = make_intent(customer_id=str(1000 + n % 2), actor="bob" if n == 3 else "alice")
        outcome = Outcome("rejected", problem_code="forbidden") if n == 5 else Outcome("applied")
        ids.append(await audit_log.record(intent, outcome))
    seen: list[str] = []
    cursor = None
    while True:
        page = await audit_log.query(limit=3, cursor=cursor)
        seen += [e["audit_id"] for e in page.entries]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    assert [e["audit_id"] for e in (await audit_log.query(actor="bob")).entries] == [ids[3]]
    rejected = await audit_log.query(outcome="rejected")
    assert [e["audit_id"] for e in rejected.entries] == [ids[5]]
    by_customer = await audit_log.query(system="billbee", customer_id="1001")
    assert [e["audit_id"] for e in by_customer.entries] == [ids[5], ids[3], ids[1]]
    assert all(e["after"]["Email"] == "***" for e in by_customer.entries)
    now = datetime.now(UTC)
    assert len((await audit_log.query(since=now - timedelta(minutes=5))).entries) == 7
    assert (await audit_log.query(until=now - timedelta(minutes=5))).entries == []
    assert (await audit_log.query(since=now + timedelta(minutes=5))).entries == []


async def test_a_scope_limits_queries_entries_reveals_and_verify(audit_log: AuditLog) -> None:
    billbee = await audit_log.record(make_intent(), Outcome("applied"))
    keycom = await audit_log.record(make_intent("4001", system="keycom"), Outcome("applied"))
    page = await audit_log.query(systems={"billbee"})
    assert [e["audit_id"] for e in page.entries] == [billbee]
    assert (await audit_log.query(systems=set())).entries == []  # no system: nothing
    assert (await audit_log.query(systems={"billbee", "keycom"}, limit=1)).next_cursor
    assert (await audit_log.get(billbee, systems={"billbee"}))["system"] == "billbee"
    with pytest.raises(OutOfScope):
        await audit_log.get(keycom, systems={"billbee"})
    with pytest.raises(EntryNotFound):  # not found stays not found
        await audit_log.get("0190f0e0-0000-7000-8000-000000000000", systems={"billbee"})
    with pytest.raises(OutOfScope):
        await audit_log.reveal(keycom, reason="r", request_id="r3", systems=(), **PO)
    assert [e["action"] for e in (await audit_log.query()).entries] == ["update", "update"]
    assert (await audit_log.verify(systems={"billbee"})).ok


async def test_export_subject_decrypts_and_writes_an_export_entry(audit_log: AuditLog) -> None:
    mine = await audit_log.record(make_intent("1002"), Outcome("applied"))
    await audit_log.record(make_intent("9999"), Outcome("applied"))
    entries, export_id = await audit_log.export_subject("billbee", "1002", request_id="r3", **PO)
    assert [e["audit_id"] for e in entries] == [mine]
    assert entries[0]["after"]["Email"] == EMAIL_AFTER
    export = await audit_log.get(export_id)
    assert (export["action"], export["customer_id"]) == ("export", "1002")


async def test_erase_shreds_values_keeps_entries_and_chain(
    audit_log: AuditLog, store_url: str
) -> None:
    first = await audit_log.begin(make_intent("1002"))
    await audit_log.finish(first, Outcome("applied"))
    other = await audit_log.record(make_intent("1003"), Outcome("applied"))
    body_before = (await sql(store_url, "SELECT body FROM audit_entry WHERE seq = 1"))[0][0]

    erase_id = await audit_log.erase("billbee", "1002", reason="Art. 17 request", request_id="r",
                                     **PO)  # fmt: skip
    erase = await audit_log.get(erase_id)
    assert (erase["action"], erase["reason"]) == ("erase", "Art. 17 request")

    clear, _ = await audit_log.reveal(first, reason="check erasure", request_id="r4", **PO)
    assert clear["after"] == {"Email": "erased", "Phone": "erased", "Note": "new note"}
    entries, _ = await audit_log.export_subject("billbee", "1002", request_id="r5", **PO)
    assert entries[0]["before"]["Email"] == "erased"
    # the ciphertexts stay, byte for byte, and the chain still verifies
    body_after = (await sql(store_url, "SELECT body FROM audit_entry WHERE seq = 1"))[0][0]
    assert str(body_after) == str(body_before)
    assert json.loads(body_after)["sealed"]["after"]["box"]
    wrapped = await sql(
        store_url, "SELECT wrapped FROM audit_subject_key WHERE customer_id = '1002'"
    )
    assert wrapped == [(None,)]
    assert (await audit_log.verify()).ok
    # other subjects are untouched; the erased subject's new data gets a new key
    assert (await audit_log.reveal(other, reason="x", request_id="r6", **PO))[0]["after"][
        "Email"
    ] == EMAIL_AFTER
    later = await audit_log.record(make_intent("1002"), Outcome("applied"))
    assert (await audit_log.reveal(later, reason="x", request_id="r7", **PO))[0]["after"][
        "Email"
    ] == EMAIL_AFTER


async def test_erase_by_another_replica_is_seen_by_writers(
    audit_log: AuditLog, store_url: str, keys: dict[str, bytes]
) -> None:
    await audit_log.record(make_intent("1002"), Outcome("applied"))  # caches the subject key
    other = await AuditLog.open(store_url, **keys)
    try:
        await other.erase("billbee", "1002", reason="Art. 17", request_id="r", **PO)
    finally:
        await other.close()
    later = await audit_log.record(make_intent("1002"), Outcome("applied"))
    clear, _ = await audit_log.reveal(later, reason="x", request_id="r2", **PO)
    assert clear["after"]["Email"] == EMAIL_AFTER  # sealed under a new, live key
    assert (await audit_log.verify()).ok


def test_intent_repr_shows_no_values() -> None:
    text = repr(make_intent())
    assert "billbee" in text
    assert [v for v in (EMAIL_BEFORE, EMAIL_AFTER, PHONE_AFTER) if v in text] == []
