"""Values the store cannot hold are refused up-front, the same on SQLite and PostgreSQL.

PostgreSQL refuses ``\\u0000`` and unpaired surrogates in a ``json`` body (``body ->>``
feeds the query columns), and index rows over 2,704 bytes. The audit log refuses them
first with InvalidAuditInput, on both backends, so one caller's odd value can never reach
a group commit; and what it refuses is the caller's, never an outage.
"""

from __future__ import annotations

import dataclasses

import pytest

from audit import AuditLog, EntryNotFound, InvalidAuditInput, Outcome
from audit.entries import MAX_KEY_BYTES
from tests.audit.conftest import make_intent

PO = {"actor": "olga", "roles": ("privacy_officer",)}

BAD_IDS = {
    "nul": "x\x00y",
    "lone surrogate": "x\ud800y",
    "too long": "7" * (MAX_KEY_BYTES + 1),
    "too many bytes": "\u00e9" * (MAX_KEY_BYTES // 2 + 1),  # 2 bytes each in UTF-8
}


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
async def test_a_customer_id_the_store_cannot_hold_is_refused(
    audit_log: AuditLog, bad: str
) -> None:
    with pytest.raises(InvalidAuditInput, match="customer_id"):
        await audit_log.record(make_intent(bad), Outcome("rejected", problem_code="x"))
    with pytest.raises(InvalidAuditInput, match="customer_id"):
        await audit_log.begin(make_intent(bad))
    with pytest.raises(InvalidAuditInput, match="customer_id"):
        await audit_log.erase("billbee", bad, reason="asked", request_id="r", **PO)
    with pytest.raises(InvalidAuditInput, match="customer_id"):
        await audit_log.export_subject("billbee", bad, request_id="r", **PO)
    with pytest.raises(InvalidAuditInput, match="customer_id"):
        await audit_log.query(customer_id=bad)
    with pytest.raises(EntryNotFound):
        await audit_log.get(bad)
    # nothing was written, and the log goes on
    await audit_log.record(make_intent("1002"), Outcome("applied"))
    report = await audit_log.verify()
    assert (report.ok, report.entries) == (True, 1)


async def test_actor_and_system_are_bounded_too(audit_log: AuditLog) -> None:
    long_actor = dataclasses.replace(make_intent(), actor="a" * (MAX_KEY_BYTES + 1))
    with pytest.raises(InvalidAuditInput, match="actor"):
        await audit_log.record(long_actor, Outcome("applied"))
    nul_system = dataclasses.replace(make_intent(), system="bill\x00bee")
    with pytest.raises(InvalidAuditInput, match="system"):
        await audit_log.record(nul_system, Outcome("applied"))


@pytest.mark.parametrize("bad", ["new\x00note", "new\udc00note"], ids=["nul", "lone surrogate"])
async def test_a_clear_value_the_store_cannot_hold_is_refused(
    audit_log: AuditLog, bad: str
) -> None:
    intent = make_intent()
    odd = dataclasses.replace(intent, after={**intent.after, "Note": bad})
    with pytest.raises(InvalidAuditInput, match="after") as caught:
        await audit_log.begin(odd)
    assert bad not in str(caught.value)
    odd_key = dataclasses.replace(intent, before={**intent.before, "No\x00te": "x"})
    with pytest.raises(InvalidAuditInput, match="before"):
        await audit_log.begin(odd_key)
    odd_purpose = dataclasses.replace(intent, purpose="customer\x00service")
    with pytest.raises(InvalidAuditInput, match="purpose"):
        await audit_log.begin(odd_purpose)
    assert (await audit_log.verify()).entries == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "infinity"])
async def test_a_number_json_cannot_hold_is_refused(audit_log: AuditLog, bad: float) -> None:
    intent = make_intent()
    odd = dataclasses.replace(intent, after={**intent.after, "Note": bad})
    with pytest.raises(InvalidAuditInput, match="after"):
        await audit_log.begin(odd)
    await audit_log.begin(intent)  # the log goes on
    assert (await audit_log.verify()).entries == 1


async def test_what_the_store_can_hold_still_goes_in(audit_log: AuditLog) -> None:
    intent = make_intent("\u00e9" * (MAX_KEY_BYTES // 2))  # exactly at the bound
    fine = dataclasses.replace(
        intent,
        # a non-BMP character (a surrogate pair in the ASCII body), an escaped-looking
        # text, other control characters, and a NUL inside a sealed (encrypted) value
        after={**intent.after, "Note": "ok \U0001f600 \\u0000 \x01\x1b", "Email": "a\x00b"},
    )
    intent_id = await audit_log.begin(fine)
    await audit_log.finish(intent_id, Outcome("applied"))
    entry, _ = await audit_log.reveal(intent_id, reason="check", request_id="r", **PO)
    assert entry["after"]["Note"] == "ok \U0001f600 \\u0000 \x01\x1b"
    assert entry["after"]["Email"] == "a\x00b"
    assert (await audit_log.query(customer_id=intent.customer_id)).entries
    assert (await audit_log.verify()).ok
