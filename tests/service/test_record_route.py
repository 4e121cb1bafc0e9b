"""``GET /v1/record-of-processing`` through the real app: the record of the policies in
force, JSON or Markdown, for auditors and privacy officers only."""

from __future__ import annotations

from typing import Any

import pytest

from policies import load_policy_set
from policies.record import build_record
from policies.record_render import to_markdown
from service.routes.record import JSON, MARKDOWN, preferred
from tests.service.conftest import SCOPED_AUDITOR
from tests.service.test_openapi import assert_conforms, load_spec

ROUTE = "/v1/record-of-processing"
AUDITOR = {"Authorization": "Bearer demo-auditor"}
PRIVACY = {"Authorization": "Bearer demo-privacy"}


async def test_the_record_of_the_policies_in_force_as_json(stack: Any) -> None:
    spec = load_spec()
    for headers in (AUDITOR, PRIVACY, {**AUDITOR, "Accept": "application/json"}):
        async with stack.client.get(ROUTE, headers=headers) as response:
            assert response.status == 200
            assert await assert_conforms(spec, ROUTE, response) is None
            body = await response.json()
    assert body == build_record(load_policy_set())
    versions = {p["system"]: p["version"] for p in body["policies"]}
    systems = await (await stack.client.get("/v1/systems", headers=AUDITOR)).json()
    # the versions the record names are the versions deciding (and audited) now
    assert versions == {s["system"]: s["policy_version"] for s in systems["systems"]}


@pytest.mark.parametrize(
    "accept", ["text/markdown", "text/markdown, application/json;q=0.5", "text/*"]
)
async def test_accept_text_markdown_answers_markdown(stack: Any, accept: str) -> None:
    async with stack.client.get(ROUTE, headers={**AUDITOR, "Accept": accept}) as response:
        assert response.status == 200
        assert response.content_type == "text/markdown"
        assert response.charset == "utf-8"
        assert await assert_conforms(load_spec(), ROUTE, response) is None
        text = await response.text()
    assert text == to_markdown(build_record(load_policy_set()))


async def test_the_record_is_refused_to_roles_that_do_not_review(stack: Any) -> None:
    spec = load_spec()
    for headers, status, code in (
        ({"Authorization": "Bearer demo-editor"}, 403, "forbidden"),
        ({"Authorization": "Bearer demo-admin"}, 403, "forbidden"),
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer nope"}, 401, "unauthenticated"),
    ):
        async with stack.client.get(ROUTE, headers=headers) as response:
            assert response.status == status
            assert await assert_conforms(spec, ROUTE, response) == code


async def test_a_scoped_auditor_gets_the_whole_record(stack: Any) -> None:
    # the record describes the policies, not any subject's data
    response = await stack.client.get(ROUTE, headers=SCOPED_AUDITOR)
    assert response.status == 200
    body = await response.json()
    assert [a["system"] for a in body["activities"]] == ["billbee", "keycom", "sedona", "timelog"]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/markdown", MARKDOWN),
        ("text/markdown;q=0.9, application/json", JSON),
        ("application/json;q=0.1, text/markdown;q=0.2", MARKDOWN),
        ("text/markdown;q=0", JSON),
        ("text/html", JSON),
        ("text/markdown;q=bad, application/json;q=0.5", JSON),
        ("TEXT/MARKDOWN", MARKDOWN),
    ],
)
def test_content_negotiation(accept: str | None, chosen: str) -> None:
    assert preferred(accept, (JSON, MARKDOWN)) == chosen
