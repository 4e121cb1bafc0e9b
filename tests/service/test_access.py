"""Authorisation runs in one place (service/access.py), once per request.

A spy wraps ``authorize`` wherever it was imported, then real requests go through the
real app: each route that needs a role asks exactly once, with the role set of its
operation, and a refusal comes before anything is read or forwarded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from service import access
from tests.service.conftest import AUDITOR, EDITOR, PRIVACY, SCOPED_EDITOR


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[frozenset[str]]]:
    """The role sets ``authorize`` was called with, in order."""
    calls: list[frozenset[str]] = []
    real = access.authorize

    def spy(who: Any, roles: frozenset[str], *args: Any, **kwargs: Any) -> None:
        calls.append(roles)
        real(who, roles, *args, **kwargs)

    users = [
        module for name, module in list(sys.modules.items())
        if name.startswith("service.") and getattr(module, "authorize", None) is real
    ]  # fmt: skip
    assert len(users) >= 2  # the gateway and the audit routes
    for module in users:
        monkeypatch.setattr(module, "authorize", spy)
    yield calls


async def test_each_operation_is_authorised_once_with_its_roles(
    stack: Any, asked: list[frozenset[str]]
) -> None:
    client = stack.client
    customer = "/v1/systems/billbee/customers/1002"
    cases = [
        ("GET", customer, EDITOR, None, access.READ_RECORD),
        ("PATCH", customer, EDITOR, {"Email": "once@example.org"}, access.CHANGE_RECORD),
        ("PATCH", customer + "?dry_run=true", EDITOR, {"Email": "x@example.org"},
         access.CHANGE_RECORD),
        ("GET", "/v1/audit?limit=1", AUDITOR, None, access.REVIEW_AUDIT),
        ("GET", "/v1/audit/verify", AUDITOR, None, access.REVIEW_AUDIT),
        ("GET", "/v1/subjects/billbee/1002/export", PRIVACY, None, access.ACT_FOR_SUBJECT),
    ]  # fmt: skip
    for method, path, headers, body, roles in cases:
        asked.clear()
        async with client.request(method, path, headers=headers, json=body) as response:
            assert response.status == 200, (method, path, await response.text())
        assert asked == [roles], (method, path)


async def test_a_refusal_is_one_check_and_nothing_is_forwarded(
    stack: Any, asked: list[frozenset[str]]
) -> None:
    before = await stack.stats("sedona")
    async with stack.client.patch(
        "/v1/systems/sedona/customers/2001", headers=SCOPED_EDITOR, json={"CustomerName": "x"}
    ) as response:
        assert response.status == 403
        assert (await response.json())["code"] == "forbidden"
    assert asked == [access.CHANGE_RECORD]
    assert await stack.stats("sedona") == before
