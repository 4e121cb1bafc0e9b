"""Bad requests get their documented problem+json answer, and nothing reaches an upstream."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request

from service.errors import ValidationFailed
from service.routes.common import flag
from tests.service.conftest import EDITOR, Stack

URL = "/v1/systems/billbee/customers/1002"
JSON = {"Content-Type": "application/json"}


async def problem(resp: object) -> dict[str, object]:
    assert resp.content_type == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = await resp.json()  # type: ignore[attr-defined]
    assert body["status"] == resp.status  # type: ignore[attr-defined]
    assert str(body["type"]).endswith("/" + str(body["code"]))
    return body


async def assert_nothing_forwarded(stack: Stack, system: str = "billbee") -> None:
    stats = await stack.stats(system)
    assert stats.get("PUT", 0) == 0
    assert stats.get("PATCH", 0) == 0


async def test_no_token_is_unauthenticated(stack: Stack) -> None:
    resp = await stack.client.patch(URL, data=b'{"Tel1": "1"}', headers=JSON)
    assert resp.status == 401
    assert (await problem(resp))["code"] == "unauthenticated"
    await assert_nothing_forwarded(stack)


async def test_unknown_token_is_unauthenticated(stack: Stack) -> None:
    headers = {**EDITOR, **JSON, "Authorization": "Bearer not-a-token"}
    resp = await stack.client.patch(URL, data=b'{"Tel1": "1"}', headers=headers)
    assert resp.status == 401
    body = await problem(resp)
    assert body["code"] == "unauthenticated"
    assert "not-a-token" not in json.dumps(body)


async def test_auditor_may_not_patch(stack: Stack) -> None:
    headers = {**EDITOR, **JSON, "Authorization": "Bearer demo-auditor"}
    resp = await stack.client.patch(URL, data=b'{"Tel1": "1"}', headers=headers)
    assert resp.status == 403
    assert (await problem(resp))["code"] == "forbidden"
    await assert_nothing_forwarded(stack)


async def test_system_outside_the_principals_scope_is_forbidden(stack: Stack) -> None:
    headers = {**EDITOR, **JSON, "Authorization": "Bearer scoped-editor-token"}
    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4001", data=b'{"note": "x"}', headers=headers
    )
    assert resp.status == 403
    assert (await problem(resp))["code"] == "forbidden"
    await assert_nothing_forwarded(stack, "keycom")


async def test_unknown_system(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/nosuch/customers/1", data=b"{}", headers={**EDITOR, **JSON}
    )
    assert resp.status == 404
    assert (await problem(resp))["code"] == "unknown_system"


async def test_unknown_customer(stack: Stack) -> None:
    for customer in ("999999999", "not-a-number"):
        resp = await stack.client.patch(
            f"/v1/systems/billbee/customers/{customer}",
            data=b'{"Tel1": "+49 30 1"}',
            headers={**EDITOR, **JSON},
        )
        assert resp.status == 404
        assert (await problem(resp))["code"] == "customer_not_found"
    await assert_nothing_forwarded(stack)


async def test_wrong_media_type(stack: Stack) -> None:
    resp = await stack.client.patch(
        URL, data=b'{"Tel1": "1"}', headers={**EDITOR, "Content-Type": "text/plain"}
    )
    assert resp.status == 415
    assert (await problem(resp))["code"] == "unsupported_media_type"
    await assert_nothing_forwarded(stack)


async def test_merge_patch_media_type_is_accepted(stack: Stack) -> None:
    resp = await stack.client.patch(
        URL,
        data=b'{"Tel1": "+49 30 7654321"}',
        headers={**EDITOR, "Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 200


async def test_malformed_json(stack: Stack) -> None:
    for raw in (b'{"Tel1": ', b"\xff\xfe", b'{"Tel1": NaN}'):
        resp = await stack.client.patch(URL, data=raw, headers={**EDITOR, **JSON})
        assert resp.status == 400
        assert (await problem(resp))["code"] == "malformed_json"
    await assert_nothing_forwarded(stack)


async def test_not_an_object(stack: Stack) -> None:
    for raw in (b"[1, 2]", b'"text"', b"null", b"42"):
        resp = await stack.client.patch(URL, data=raw, headers={**EDITOR, **JSON})
        assert resp.status == 400
        assert (await problem(resp))["code"] == "not_an_object"
    await assert_nothing_forwarded(stack)


async def test_payload_too_large(stack: Stack) -> None:
    big = json.dumps({"Tel1": "x" * (64 * 1024 + 10)}).encode()
    resp = await stack.client.patch(URL, data=big, headers={**EDITOR, **JSON})
    assert resp.status == 413
    assert (await problem(resp))["code"] == "payload_too_large"
    await assert_nothing_forwarded(stack)


async def test_validation_failed_lists_every_field(stack: Stack) -> None:
    patch = {"Tel1": 5, "NoSuchField": "x", "LanguageId": "de"}
    resp = await stack.client.patch(URL, json=patch, headers=EDITOR)
    assert resp.status == 422
    body = await problem(resp)
    assert body["code"] == "validation_failed"
    found = {(e["field"], e["code"]) for e in body["errors"]}  # type: ignore[attr-defined]
    assert ("Tel1", "wrong_type") in found
    assert ("NoSuchField", "unknown_field") in found
    assert ("LanguageId", "wrong_type") in found
    assert resp.headers.get("X-Audit-Id")
    await assert_nothing_forwarded(stack)


async def test_purpose_required(stack: Stack) -> None:
    headers = {"Authorization": "Bearer demo-editor"}
    resp = await stack.client.patch(URL, json={"Tel1": "+49 30 1"}, headers=headers)
    assert resp.status == 403
    assert (await problem(resp))["code"] == "purpose_required"
    await assert_nothing_forwarded(stack)


async def test_bad_dry_run_flag(stack: Stack) -> None:
    resp = await stack.client.patch(
        URL + "?dry_run=maybe", json={"Tel1": "+49 30 1"}, headers=EDITOR
    )
    assert resp.status == 422
    assert (await problem(resp))["code"] == "validation_failed"


async def test_every_answer_carries_a_request_id(stack: Stack) -> None:
    resp = await stack.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await stack.client.get("/v1/nothing-here")
    assert resp.status == 404
    assert resp.headers["X-Request-Id"]
    assert (await problem(resp))["code"] == "not_found"


def test_a_flag_is_false_without_a_query_and_read_from_one() -> None:
    """``flag`` skips the query's parse when there is no query (issue 11); with one, it
    reads it as before: true or false in their spellings, anything else 422."""
    def read(target: str) -> bool:
        return flag(make_mocked_request("PATCH", target), "dry_run")

    assert read(URL) is False
    assert read(URL + "?") is False
    assert read(URL + "?other=1") is False
    assert read(URL + "?dry_run=true") is True
    assert read(URL + "?other=1&dry_run=YES") is True
    assert read(URL + "?dry_run=0") is False
    with pytest.raises(ValidationFailed):
        read(URL + "?dry_run=maybe")


async def test_every_answer_is_stamped_by_the_edge_without_a_prepare_hook(stack: Stack) -> None:
    """The gateway's app registers no ``on_response_prepare`` hook (issue 11: a signal
    and a coroutine per answer): the edge stamps ``Server`` and ``X-Request-Id`` (and
    ``X-Audit-Id`` once written) on every answer, each once."""
    app = stack.client.app
    assert app is not None and not app.on_response_prepare
    answers = {
        "change": await stack.client.patch(URL, json={"Tel1": "+49 30 1234567"}, headers=EDITOR),
        "problem": await stack.client.patch(URL, data=b"{", headers={**EDITOR, **JSON}),
        "unauthenticated": await stack.client.patch(URL, json={}),
        "no route": await stack.client.get("/v1/nothing-here"),
        "wrong method": await stack.client.delete(URL, headers=EDITOR),
        "health": await stack.client.get("/healthz"),
        "metrics": await stack.client.get("/metrics"),
    }
    for name, resp in answers.items():
        assert resp.headers.getall("Server") == ["gdpr-gateway"], name
        assert len(resp.headers.getall("X-Request-Id")) == 1, name
    assert answers["change"].status == 200
    assert len(answers["change"].headers.getall("X-Audit-Id")) == 1
