"""Ids in paths are checked at the edge, before anything is read, audited or forwarded.

A customer id or an audit id is 1-128 characters of ``A-Z a-z 0-9 . _ -`` starting with a
letter or digit (docs/api.md "Identifiers"). Anything else - a NUL, 6,000 characters -
is 404 ``customer_not_found`` / ``audit_entry_not_found`` without an audit entry: once
such an id reached the audit store, PostgreSQL refused the entry and, with it, the
whole group commit of everybody else's entries (issue 8, item 1).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.service.conftest import AUDITOR, EDITOR, PRIVACY, Stack

POISON_IDS = {
    "nul": "x%00",  # PostgreSQL cannot store a NUL in text or jsonb
    "6000_chars": "x" * 6000,  # over PostgreSQL's 2,704-byte index row
    "escape": "%1B%5B31m",  # ESC [31m: a terminal escape
    "non_ascii": "%C3%A4",
    "bad_utf8": "%FF%FE",  # the server sees surrogate escapes
    "space": "a%20b",
    "sign": "-1",  # must start with a letter or a digit
    "dot": ".hidden",
    "129_chars": "x" * 129,  # one over the limit
}
REAL_IDS = {
    "number": "1002",
    "generated": "100000",
    "uuid": "8f0c2a52-4c1e-4f57-9d0b-0c3f2d7c1a11",
    "mixed": "C-100_1.a",
    "128_chars": "x" * 128,
}
BAD_AUDIT_IDS = {"nul": "x%00", "6000_chars": "a" * 6000, "escape": "%1B", "bad_utf8": "%FF"}


async def entry_count(stack: Stack) -> int:
    report = await stack.audit.verify()
    return int(report.entries)


async def problem_code(resp: Any) -> str:
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    return str(body["code"])


@pytest.mark.parametrize("bad", POISON_IDS.values(), ids=POISON_IDS.keys())
async def test_a_malformed_customer_id_is_404_before_anything_happens(
    stack: Stack, bad: str
) -> None:
    before = await entry_count(stack)
    url = f"/v1/systems/keycom/customers/{bad}"
    # a body that fails validation: before, its refusal was audited with the raw id
    resp = await stack.client.patch(url, json={"no_such_field": 1}, headers=EDITOR)
    assert resp.status == 404
    assert await problem_code(resp) == "customer_not_found"
    assert "X-Audit-Id" not in resp.headers
    resp = await stack.client.get(url, headers=EDITOR)
    assert (resp.status, await problem_code(resp)) == (404, "customer_not_found")
    export = await stack.client.get(f"/v1/subjects/keycom/{bad}/export", headers=PRIVACY)
    assert (export.status, await problem_code(export)) == (404, "customer_not_found")
    erase = await stack.client.post(
        f"/v1/subjects/keycom/{bad}/erase", json={"reason": "test"}, headers=PRIVACY
    )
    assert (erase.status, await problem_code(erase)) == (404, "customer_not_found")
    assert await entry_count(stack) == before  # nothing audited
    stats = await stack.stats("keycom")
    assert sum(stats.values()) == 0, stats  # nothing read, nothing forwarded


async def test_the_id_check_comes_after_authentication(stack: Stack) -> None:
    resp = await stack.client.get("/v1/systems/keycom/customers/x%00")
    assert (resp.status, await problem_code(resp)) == (401, "unauthenticated")


@pytest.mark.parametrize("good", REAL_IDS.values(), ids=REAL_IDS.keys())
async def test_every_shape_of_real_id_passes_the_edge(stack: Stack, good: str) -> None:
    # the emulators hold numeric ids only: the others pass the edge and are then
    # refused by the connector (its own canonical form), still as customer_not_found
    resp = await stack.client.get(f"/v1/systems/billbee/customers/{good}", headers=EDITOR)
    if good in ("1002", "100000"):
        assert resp.status == 200
    else:
        assert (resp.status, await problem_code(resp)) == (404, "customer_not_found")
    export = await stack.client.get(f"/v1/subjects/billbee/{good}/export", headers=PRIVACY)
    assert export.status == 200


@pytest.mark.parametrize("bad", BAD_AUDIT_IDS.values(), ids=BAD_AUDIT_IDS.keys())
async def test_a_malformed_audit_id_is_404_on_both_stores(
    any_store_stack: Stack, bad: str
) -> None:
    stack = any_store_stack
    resp = await stack.client.get(f"/v1/audit/{bad}", headers=AUDITOR)
    assert (resp.status, await problem_code(resp)) == (404, "audit_entry_not_found")
    resp = await stack.client.post(
        f"/v1/audit/{bad}/reveal", json={"reason": "check"}, headers=PRIVACY
    )
    assert (resp.status, await problem_code(resp)) == (404, "audit_entry_not_found")


@pytest.mark.parametrize("bad", BAD_AUDIT_IDS.values(), ids=BAD_AUDIT_IDS.keys())
async def test_a_malformed_customer_id_filter_is_422(any_store_stack: Stack, bad: str) -> None:
    resp = await any_store_stack.client.get(
        f"/v1/audit?customer_id={bad}", headers=AUDITOR
    )
    assert resp.status == 422
    body = await resp.json()
    assert body["code"] == "validation_failed"
    assert body["errors"][0] == {
        "field": "customer_id", "code": "invalid_format", "message": body["errors"][0]["message"]
    }


async def test_poison_ids_beside_ordinary_reads_leave_the_reads_alone(
    any_store_stack: Stack,
) -> None:
    """Issue 8 item 1 as reported: 40 poison PATCHes alongside 40 ordinary reads."""
    stack = any_store_stack

    async def poison(i: int) -> int:
        resp = await stack.client.patch(
            f"/v1/systems/keycom/customers/x%00{i}", json={"bad": 1}, headers=EDITOR
        )
        return resp.status

    async def long_id(i: int) -> int:
        resp = await stack.client.patch(
            f"/v1/systems/keycom/customers/{'y' * 6000}{i}", json={"bad": 1}, headers=EDITOR
        )
        return resp.status

    async def read(_i: int) -> int:
        resp = await stack.client.get("/v1/systems/keycom/customers/4001", headers=EDITOR)
        return resp.status

    statuses = await asyncio.gather(
        *(f(i) for i in range(20) for f in (poison, long_id, read, read))
    )
    assert statuses.count(200) == 40
    assert statuses.count(404) == 40


@pytest.mark.parametrize(
    "path",
    [
        "/v1/systems/{s}/policy",
        "/v1/systems/{s}/customers/1002",
        "/v1/subjects/{s}/1002/export",
    ],
)
async def test_an_unknown_system_is_not_echoed(stack: Stack, path: str) -> None:
    name = "Jane-Doe-1970" * 10
    resp = await stack.client.get(path.format(s=name), headers=PRIVACY)
    assert (resp.status, await problem_code(resp)) == (404, "unknown_system")
    assert "Jane" not in await resp.text()
