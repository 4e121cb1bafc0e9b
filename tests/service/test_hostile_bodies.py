"""Hostile values in headers and bodies: refused with their problem, never recorded raw.

Issue 8 items 8 and 9: a free-text ``X-Purpose`` was kept verbatim in the audit log; a
NUL or an ESC in a string field passed validation and was forwarded; a JSON object with
the same key twice was resolved (last wins) where an upstream might take the first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.service.conftest import EDITOR, PRIVACY, Stack

BILLBEE = "/v1/systems/billbee/customers/1002"
KEYCOM = "/v1/systems/keycom/customers/4001"
JSON = {"Content-Type": "application/json"}
# what a caller typed where a purpose belongs: personal data, 4 KB of it
FREE_TEXT_PURPOSE = "Jane Doe, born 1970-01-01, " + "asked about her invoice; " * 160


async def stored_text(stack: Stack) -> str:
    """Every row of the audit store as text, straight from the database."""
    url = stack.settings.audit_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        files = sorted(path.parent.glob(path.name + "*"))  # the database and its WAL
        assert files
        return "\n".join(f.read_bytes().decode("utf-8", "replace") for f in files)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch("SELECT t::text FROM audit_entry t")
    finally:
        await conn.close()
    return "\n".join(r[0] for r in rows)


async def problem(resp: Any) -> dict[str, Any]:
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    return body


async def forwarded(stack: Stack, system: str) -> int:
    stats = await stack.stats(system)
    return stats.get("PUT", 0) + stats.get("PATCH", 0)


# ---- X-Purpose (item 8) -----------------------------------------------------------------


async def test_a_free_text_purpose_is_recorded_as_unknown_never_verbatim(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    headers = {**EDITOR, "X-Purpose": FREE_TEXT_PURPOSE}
    resp = await stack.client.patch(BILLBEE, json={"Tel1": "+49 30 1"}, headers=headers)
    assert resp.status == 403
    body = await problem(resp)
    assert body["code"] == "purpose_not_allowed"
    assert "Jane" not in json.dumps(body)
    audit_id = resp.headers["X-Audit-Id"]

    entry = await stack.audit.get(audit_id)
    assert entry["purpose"] == "unknown"
    export = await stack.client.get("/v1/subjects/billbee/1002/export", headers=PRIVACY)
    assert "Jane" not in await export.text()
    assert "Jane" not in await stored_text(stack)
    assert await forwarded(stack, "billbee") == 0


async def test_a_known_purpose_is_recorded_as_it_is(stack: Stack) -> None:
    resp = await stack.client.patch(
        BILLBEE, json={"Tel1": "+49 30 1"}, headers={**EDITOR, "X-Purpose": " billing "}
    )
    # billing does not open contact fields: refused, and recorded with the known purpose
    assert (await problem(resp))["code"] == "purpose_not_allowed"
    entry = await stack.audit.get(resp.headers["X-Audit-Id"])
    assert entry["purpose"] == "billing"


async def test_a_read_with_a_free_text_purpose_is_refused(stack: Stack) -> None:
    headers = {**EDITOR, "X-Purpose": FREE_TEXT_PURPOSE}
    resp = await stack.client.get(BILLBEE, headers=headers)
    assert resp.status == 403
    assert (await problem(resp))["code"] == "purpose_not_allowed"
    assert "Jane" not in await stored_text(stack)


# ---- control characters (item 9) ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\x7f", "\x85", "\ud800"],
                         ids=["nul", "esc", "del", "nel", "surrogate"])
async def test_a_control_character_in_any_string_is_refused_and_not_forwarded(
    any_store_stack: Stack, bad: str
) -> None:
    stack = any_store_stack
    cases = [
        (BILLBEE, {"Email": f"probe{bad}x@example.org"}, "Email"),
        (BILLBEE, {"MetaData": [{"TypeId": 1, "Value": f"a{bad}"}]}, "MetaData[0].Value"),
        ("/v1/systems/sedona/customers/2001",
         {"CustomerBillPrimary": {"Address1": f"Main St{bad}"}}, "CustomerBillPrimary.Address1"),
        (KEYCOM, {"sms_numbers": ["+358401234567", f"+35840{bad}"]}, "sms_numbers[1]"),
        (KEYCOM, {"note": f"line one\nline{bad}two"}, "note"),
    ]
    for url, patch, field in cases:
        raw = json.dumps(patch).encode()  # \\u escapes: the JSON itself is valid
        resp = await stack.client.patch(url, data=raw, headers={**EDITOR, **JSON})
        assert resp.status == 422, field
        body = await problem(resp)
        assert body["code"] == "validation_failed"
        assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, "invalid_format")]
        assert resp.headers.get("X-Audit-Id")  # the refusal is audited, the store took it
    for system in ("billbee", "sedona", "keycom"):
        assert await forwarded(stack, system) == 0


async def test_the_keycom_note_takes_several_lines(stack: Stack) -> None:
    note = "first line\r\nsecond line\n\tindented"
    resp = await stack.client.patch(KEYCOM, json={"note": note}, headers=EDITOR)
    assert resp.status == 200
    assert stack.store("keycom").get(4001)["note"] == note


async def test_a_control_character_in_a_reason_is_refused(stack: Stack) -> None:
    resp = await stack.client.post(
        "/v1/subjects/billbee/1002/erase", json={"reason": "Art. 17\x00"}, headers=PRIVACY
    )
    assert resp.status == 422
    assert (await problem(resp))["errors"][0]["code"] == "invalid_format"


async def test_member_names_the_policy_does_not_know_are_not_recorded(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    patch = {"Jane Doe born 1970-01-01": 1, "x\u0000y": 2, "Tel1": 5}
    resp = await stack.client.patch(BILLBEE, json=patch, headers=EDITOR)
    assert resp.status == 422
    entry = await stack.audit.get(resp.headers["X-Audit-Id"])
    assert entry["changed"] == ["Tel1"]
    assert "Jane" not in await stored_text(stack)


# ---- duplicate keys (item 9) -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"Tel1": "+49 30 1", "Tel1": "+49 30 2"}',
        b'{"Tel1": "+49 30 1", "Tel\\u0031": "+49 30 2"}',  # the same name, escaped
        b'{"MetaData": [{"TypeId": 1, "Value": "a", "Value": "b"}]}',
        b'{"DefaultMailAddress": {"Value": "a@example.org", "Value": "b@example.org"}}',
    ],
    ids=["top", "escaped", "in_array", "nested"],
)
async def test_duplicate_keys_are_refused_at_any_depth(stack: Stack, raw: bytes) -> None:
    resp = await stack.client.patch(BILLBEE, data=raw, headers={**EDITOR, **JSON})
    assert resp.status == 400
    body = await problem(resp)
    assert body["code"] == "malformed_json"
    assert "duplicate keys" in body["detail"]
    assert "X-Audit-Id" not in resp.headers
    assert await forwarded(stack, "billbee") == 0


async def test_duplicate_keys_in_a_reason_body_are_refused(stack: Stack) -> None:
    resp = await stack.client.post(
        "/v1/subjects/billbee/1002/erase",
        data=b'{"reason": "a", "reason": "b"}',
        headers={**PRIVACY, **JSON},
    )
    assert resp.status == 400
    assert "duplicate keys" in (await problem(resp))["detail"]
