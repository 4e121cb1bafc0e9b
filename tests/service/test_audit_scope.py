"""System scope on the audit review routes (OWASP API1): a reviewer scoped to billbee
never lists, opens, reveals or learns the id of a keycom entry. Real HTTP, both stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.service.conftest import (
    AUDITOR,
    EDITOR,
    PRIVACY,
    SCOPED_AUDITOR,
    SCOPED_PRIVACY,
    Stack,
)

KEYCOM_NOTE = "keycom note 7Q"
BILLBEE_PHONE = "+49 30 1357911"


async def _change(stack: Stack, path: str, body: dict[str, Any]) -> str:
    resp = await stack.client.patch(path, json=body, headers=EDITOR)
    assert resp.status == 200, await resp.text()
    audit_id: str = (await resp.json())["audit_id"]
    return audit_id


async def _two_systems(stack: Stack) -> tuple[str, str]:
    """One change in billbee, one in keycom, and a reveal of the keycom one (an admin
    entry that carries keycom too). Returns (billbee intent id, keycom intent id)."""
    billbee = await _change(stack, "/v1/systems/billbee/customers/1002", {"Tel1": BILLBEE_PHONE})
    keycom = await _change(stack, "/v1/systems/keycom/customers/4001", {"note": KEYCOM_NOTE})
    resp = await stack.client.post(
        f"/v1/audit/{keycom}/reveal", json={"reason": "complaint"}, headers=PRIVACY
    )
    assert resp.status == 200
    return billbee, keycom


async def _walk(stack: Stack, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    """Every entry the list route gives, page by page."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        resp = await stack.client.get("/v1/audit", params=query, headers=headers)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        assert page["entries"] or not seen, "an empty page after a cursor"
        seen += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


async def test_a_scoped_reviewer_lists_only_its_systems_with_correct_paging(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    await _two_systems(stack)
    everything = await _walk(stack, AUDITOR, limit="500")
    billbee_ids = [e["audit_id"] for e in everything if e["system"] == "billbee"]
    assert billbee_ids and len(billbee_ids) < len(everything)

    # the filter is in the query: pages of one are full pages, and they end exactly
    for headers in (SCOPED_AUDITOR, SCOPED_PRIVACY):
        walked = await _walk(stack, headers, limit="1")
        assert [e["audit_id"] for e in walked] == billbee_ids
        assert KEYCOM_NOTE not in str(walked)
    # a filter that stays in scope works; one outside is refused, not emptied
    assert [e["audit_id"] for e in await _walk(stack, SCOPED_AUDITOR, system="billbee")] == (
        billbee_ids
    )
    refused = await stack.client.get("/v1/audit", params={"system": "keycom"},
                                     headers=SCOPED_AUDITOR)
    assert refused.status == 403
    assert (await refused.json())["code"] == "forbidden"
    # other filters never reach past the scope
    for params in ({"customer_id": "4001"}, {"actor": "demo-privacy"}, {"outcome": "applied"}):
        assert all(e["system"] == "billbee" for e in await _walk(stack, SCOPED_AUDITOR, **params))


async def test_a_scoped_reviewer_cannot_open_or_reveal_an_entry_of_another_system(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    billbee, keycom = await _two_systems(stack)

    for headers in (SCOPED_AUDITOR, SCOPED_PRIVACY):
        opened = await stack.client.get(f"/v1/audit/{keycom}", headers=headers)
        assert opened.status == 403
        problem = await opened.json()
        assert problem["code"] == "forbidden"
        assert "keycom" not in str(problem) and "4001" not in str(problem)
        assert (await stack.client.get(f"/v1/audit/{billbee}", headers=headers)).status == 200

    reveals_before = await _reveals(stack)
    refused = await stack.client.post(
        f"/v1/audit/{keycom}/reveal", json={"reason": "curious"}, headers=SCOPED_PRIVACY
    )
    assert refused.status == 403
    text = await refused.text()
    assert KEYCOM_NOTE not in text and "4001" not in text
    assert "X-Audit-Id" not in refused.headers
    assert await _reveals(stack) == reveals_before  # nothing revealed, nothing recorded

    # every entry of another system (intent, outcome, and the admin reveal entry), by
    # every route that opens one: refused, nothing revealed
    others = [e["audit_id"] for e in await _walk(stack, AUDITOR, limit="500")
              if e["system"] != "billbee"]
    assert len(others) >= 3
    for audit_id in others:
        for headers in (SCOPED_AUDITOR, SCOPED_PRIVACY):
            assert (await stack.client.get(f"/v1/audit/{audit_id}", headers=headers)).status == 403
        revealed = await stack.client.post(
            f"/v1/audit/{audit_id}/reveal", json={"reason": "x"}, headers=SCOPED_PRIVACY
        )
        assert revealed.status == 403
    assert await _reveals(stack) == reveals_before

    allowed = await stack.client.post(
        f"/v1/audit/{billbee}/reveal", json={"reason": "complaint"}, headers=SCOPED_PRIVACY
    )
    assert allowed.status == 200
    assert (await allowed.json())["entry"]["after"]["Tel1"] == BILLBEE_PHONE
    # the export and erase routes were already scoped; they stay so
    for method, path in (("GET", "/v1/subjects/keycom/4001/export"),
                         ("POST", "/v1/subjects/keycom/4001/erase")):
        resp = await stack.client.request(
            method, path, json={"reason": "x"}, headers=SCOPED_PRIVACY
        )
        assert resp.status == 403


async def _reveals(stack: Stack) -> int:
    walked = await _walk(stack, AUDITOR, limit="500")
    return sum(1 for e in walked if e["action"] == "reveal")


async def test_verify_tells_every_reviewer_the_chain_broke_but_names_only_entries_in_scope(
    stack: Stack, tmp_path: Path
) -> None:
    _, keycom = await _two_systems(stack)
    _tamper(tmp_path / "audit.db", keycom)

    full = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert full["ok"] is False and full["first_bad"] == keycom
    scoped = await (await stack.client.get("/v1/audit/verify", headers=SCOPED_AUDITOR)).json()
    assert scoped["ok"] is False  # the verdict is global: a break is never hidden
    assert scoped["first_bad"] is None  # but the id of a keycom entry is not given
    assert scoped["entries"] == full["entries"] and scoped["head"] == full["head"]


async def test_verify_names_a_bad_entry_within_the_reviewers_scope(
    stack: Stack, tmp_path: Path
) -> None:
    billbee, _ = await _two_systems(stack)
    _tamper(tmp_path / "audit.db", billbee)
    scoped = await (await stack.client.get("/v1/audit/verify", headers=SCOPED_AUDITOR)).json()
    assert scoped["ok"] is False and scoped["first_bad"] == billbee


def _tamper(db: Path, audit_id: str) -> None:
    """Alter one stored entry from outside, as an attacker with file access would."""
    con = sqlite3.connect(db)
    try:
        changed = con.execute(
            "UPDATE audit_entry SET body = replace(body, '\"actor\":\"demo-editor\"',"
            " '\"actor\":\"mallory\"') WHERE audit_id = ?",
            (audit_id,),
        ).rowcount
        con.commit()
    finally:
        con.close()
    assert changed == 1
