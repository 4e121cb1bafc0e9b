"""The two middlewares on a tiny real aiohttp app, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from audit.errors import AuditUnavailable
from service.errors import (
    CustomerNotFound,
    FieldProblem,
    PolicyDenied,
    RateLimited,
    UpstreamTimeout,
    ValidationFailed,
)
from service.keys import AUDIT_ID_KEY, REQUEST_ID_KEY
from service.middleware import (
    new_request_id,
    problem_response,
    record_problem,
    request_id_for,
    stamp_context_headers,
)
from tests.service.edge_app import STATE_DIR_KEY, edge_app
from tests.service.log_lines import captured

SECRET_MESSAGE = "jane.doe@example.com-XYZZY"  # a value that must never reach an answer or log


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"request_id": request[REQUEST_ID_KEY]})


async def audited(request: web.Request) -> web.Response:
    request[AUDIT_ID_KEY] = "aud_123"
    return web.json_response({})


async def validation(request: web.Request) -> web.Response:
    raise ValidationFailed(
        "2 fields are invalid",
        errors=[
            FieldProblem("Email", "invalid_format", "not an email address"),
            FieldProblem("Address.Zip", "too_long", "at most 10 characters"),
        ],
    )


async def not_found(request: web.Request) -> web.Response:
    raise CustomerNotFound("no such customer in this system")


async def denied_with_audit(request: web.Request) -> web.Response:
    exc = PolicyDenied("customer_archived", "the customer is archived")
    exc.audit_id = "aud_denied"
    raise exc


async def rate_limited(request: web.Request) -> web.Response:
    raise RateLimited("slow down", retry_after=2.2)


async def timeout(request: web.Request) -> web.Response:
    raise UpstreamTimeout("the upstream did not answer in time")


async def audit_down(request: web.Request) -> web.Response:
    raise AuditUnavailable(f"database at host failed: {SECRET_MESSAGE}")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError(f"KeyError on {SECRET_MESSAGE}")


async def read_body(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({})


async def custom_problem(request: web.Request) -> web.Response:
    record_problem(request, "would_clear_unknown_fields")
    return web.json_response({"custom": True}, status=409)


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def teapot(request: web.Request) -> web.Response:
    raise web.HTTPConflict(reason="Conflict")


def make_app() -> web.Application:
    app = edge_app(client_max_size=100)
    app.router.add_get("/ok", ok)
    app.router.add_get("/audited", audited)
    app.router.add_post("/validation/{system}", validation)
    app.router.add_get("/v1/systems/{system}/customers/{customer_id}", not_found)
    app.router.add_get("/denied", denied_with_audit)
    app.router.add_get("/rate", rate_limited)
    app.router.add_get("/timeout", timeout)
    app.router.add_get("/audit-down", audit_down)
    app.router.add_get("/crash", crash)
    app.router.add_post("/body", read_body)
    app.router.add_get("/custom", custom_problem)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/conflict", teapot)
    return app


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await aiohttp_client(make_app())
    return c


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    with captured("gdpr_gateway") as lines:
        yield lines


def access(lines: list[str]) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in lines]
    return [p for p in parsed if p["logger"] == "gdpr_gateway.access"]


async def problem(resp: Any) -> dict[str, Any]:
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["type"] == f"https://gdpr-gateway.dev/problems/{body['code']}"
    assert body["status"] == resp.status
    assert resp.headers.get("X-Request-Id")
    return body


# -- request ids ---------------------------------------------------------------------


async def test_request_id_is_echoed(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/ok", headers={"X-Request-Id": "client-Req_1.2"})
    assert resp.headers["X-Request-Id"] == "client-Req_1.2"
    assert (await resp.json())["request_id"] == "client-Req_1.2"


@pytest.mark.parametrize("offered", [None, "", "a" * 129, "has space", "semi;colon", "é"])
async def test_insane_request_id_is_replaced(
    client: TestClient[Any, Any], offered: str | None
) -> None:
    headers = {"X-Request-Id": offered} if offered is not None else {}
    resp = await client.get("/ok", headers=headers)
    rid = resp.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert (await resp.json())["request_id"] == rid


def test_new_request_ids_are_uuid4_and_drawn_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh id is a uuid4 (version and variant bits), never repeated, and its random
    bytes come from blocks: not one ``os.urandom`` system call per request (issue 11)."""
    calls = []
    real = os.urandom

    def counted(size: int) -> bytes:
        calls.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", counted)
    ids = [new_request_id() for _ in range(600)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(hex=rid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == rid
    assert len(calls) <= 4  # 600 x 16 bytes from 4 KiB blocks


async def test_request_id_max_length_is_kept(client: TestClient[Any, Any]) -> None:
    rid = "x" * 128
    resp = await client.get("/ok", headers={"X-Request-Id": rid})
    assert resp.headers["X-Request-Id"] == rid


async def test_two_requests_get_different_ids(client: TestClient[Any, Any]) -> None:
    a = (await client.get("/ok")).headers["X-Request-Id"]
    b = (await client.get("/ok")).headers["X-Request-Id"]
    assert a != b


async def test_audit_id_header(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/audited")
    assert resp.headers["X-Audit-Id"] == "aud_123"
    assert "X-Audit-Id" not in (await client.get("/ok")).headers


# -- problem shapes -------------------------------------------------------------------


async def test_validation_failed_lists_field_errors(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/validation/billbee", headers={"X-Request-Id": "r1"})
    assert resp.status == 422
    body = await problem(resp)
    assert body == {
        "type": "https://gdpr-gateway.dev/problems/validation_failed",
        "title": "Validation failed",
        "status": 422,
        "detail": "2 fields are invalid",
        "code": "validation_failed",
        "errors": [
            {"field": "Email", "code": "invalid_format", "message": "not an email address"},
            {"field": "Address.Zip", "code": "too_long", "message": "at most 10 characters"},
        ],
    }
    assert resp.headers["X-Request-Id"] == "r1"


async def test_gateway_error_without_field_errors_has_no_errors_key(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/v1/systems/billbee/customers/1001")
    assert resp.status == 404
    body = await problem(resp)
    assert body["code"] == "customer_not_found" and "errors" not in body


async def test_error_with_audit_id_sets_header(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/denied")
    assert resp.status == 409
    assert (await problem(resp))["code"] == "customer_archived"
    assert resp.headers["X-Audit-Id"] == "aud_denied"


async def test_retry_after_is_whole_seconds_rounded_up(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/rate")
    assert resp.status == 429
    assert (await problem(resp))["code"] == "rate_limited"
    assert resp.headers["Retry-After"] == "3"


async def test_upstream_timeout_is_504(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/timeout")
    assert resp.status == 504
    assert (await problem(resp))["code"] == "upstream_timeout"


async def test_audit_unavailable_is_503_without_internals(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/audit-down")
    assert resp.status == 503
    body = await problem(resp)
    assert body["code"] == "audit_unavailable"
    assert "XYZZY" not in json.dumps(body)


async def test_unknown_route_is_404_not_found(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/no/such/path?email=x")
    assert resp.status == 404
    body = await problem(resp)
    assert body["code"] == "not_found"
    assert "no/such" not in body["detail"]


async def test_wrong_method_is_405_with_allow(client: TestClient[Any, Any]) -> None:
    resp = await client.delete("/ok")
    assert resp.status == 405
    assert (await problem(resp))["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


async def test_body_over_limit_is_413(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/body", data=b"x" * 1000)
    assert resp.status == 413
    assert (await problem(resp))["code"] == "payload_too_large"


async def test_other_http_errors_become_problems(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/conflict")
    assert resp.status == 409
    assert (await problem(resp))["code"] == "conflict"


async def test_redirects_pass_through_with_request_id(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/redirect", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ok"
    assert resp.headers["X-Request-Id"]


async def test_crash_is_500_without_internals_and_logged_by_type(
    client: TestClient[Any, Any], log_lines: list[str]
) -> None:
    resp = await client.get("/crash")
    assert resp.status == 500
    body = await problem(resp)
    assert body["code"] == "internal_error"
    assert body["detail"] == "an unexpected error occurred"
    text = json.dumps(body)
    assert "RuntimeError" not in text and "XYZZY" not in text and "Traceback" not in text
    errors = [json.loads(x) for x in log_lines if "unhandled_exception" in x]
    assert len(errors) == 1
    assert errors[0]["error_type"] == "builtins.RuntimeError"
    assert errors[0]["request_id"] == resp.headers["X-Request-Id"]
    assert all("XYZZY" not in line for line in log_lines)


def test_problem_response_directly() -> None:
    resp = problem_response(
        "edit_conflict", 409, "Edit conflict", "the record changed", headers={"X-A": "1"}
    )
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert resp.headers["X-A"] == "1"
    assert resp.text is not None
    assert json.loads(resp.text)["type"] == "https://gdpr-gateway.dev/problems/edit_conflict"


# -- the access log -------------------------------------------------------------------


async def test_access_line_has_template_status_code_and_no_values(
    client: TestClient[Any, Any], log_lines: list[str]
) -> None:
    resp = await client.get(
        "/v1/systems/billbee/customers/4711?email=jane%40example.com",
        headers={"X-Request-Id": "acc-1"},
    )
    assert resp.status == 404
    (line,) = access(log_lines)
    assert line["event"] == "http_request"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/systems/{system}/customers/{customer_id}"
    assert line["status"] == 404
    assert line["problem_code"] == "customer_not_found"
    assert line["request_id"] == "acc-1"
    assert line["system"] == "billbee"
    assert isinstance(line["duration_ms"], float)
    raw = "\n".join(log_lines)
    assert "4711" not in raw and "jane" not in raw and "email" not in raw


async def test_access_line_for_success_and_unknown_system(
    client: TestClient[Any, Any], log_lines: list[str]
) -> None:
    await client.get("/ok")
    await client.get("/v1/systems/mars-XYZZY/customers/1")
    ok_line, other = access(log_lines)
    assert (ok_line["route"], ok_line["status"], ok_line["problem_code"]) == ("/ok", 200, None)
    assert other["system"] is None
    assert "XYZZY" not in json.dumps(other)


async def test_access_line_for_unmatched_and_recorded_problem(
    client: TestClient[Any, Any], log_lines: list[str]
) -> None:
    await client.get("/nowhere/1001")
    await client.get("/custom")
    unmatched, custom = access(log_lines)
    assert (unmatched["route"], unmatched["problem_code"]) == ("unmatched", "not_found")
    assert custom["problem_code"] == "would_clear_unknown_fields"
    assert "1001" not in json.dumps(unmatched)


async def test_the_edge_apps_state_dir_goes_with_the_app(
    aiohttp_client: Callable[..., Any],
) -> None:
    """tests/service/edge_app.py: the temporary state directory (the pseudonym key is
    written there) is removed when the app is cleaned up, not left in /tmp."""
    app = edge_app()
    app.router.add_get("/ok", ok)
    state_dir = app[STATE_DIR_KEY]
    c: TestClient[Any, Any] = await aiohttp_client(app)
    assert (await c.get("/ok")).status == 200
    assert state_dir.is_dir()
    await c.close()
    assert not state_dir.exists()


async def test_context_alone_still_stamps_http_exceptions(
    aiohttp_client: Callable[..., Any],
) -> None:
    app = edge_app()
    app.router.add_get("/ok", ok)
    c: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await c.get("/missing")
    assert resp.status == 404
    assert resp.headers["X-Request-Id"]


async def redirected(request: web.Request) -> web.Response:
    request[AUDIT_ID_KEY] = "aud_redirect"
    raise web.HTTPFound("/ok")


async def test_the_edge_stamps_a_redirect_raised_as_an_exception(
    aiohttp_client: Callable[..., Any],
) -> None:
    """No prepare hook needed (the gateway registers none): a redirect is an exception
    that is its own response, stamped by the edge before aiohttp sends it."""
    app = edge_app()
    app.router.add_get("/ok", ok)
    app.router.add_get("/away", redirected)
    c: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await c.get("/away", headers={"X-Request-Id": "r-9"}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ok"
    assert resp.headers.getall("Server") == ["gdpr-gateway"]
    assert resp.headers.getall("X-Request-Id") == ["r-9"]
    assert resp.headers.getall("X-Audit-Id") == ["aud_redirect"]


async def streamed(request: web.Request) -> web.StreamResponse:
    request[AUDIT_ID_KEY] = "aud_stream"
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"line\n")
    await response.write_eof()
    return response


async def test_streamed_responses_get_headers_from_the_prepare_hook(
    aiohttp_client: Callable[..., Any],
) -> None:
    app = make_app()
    app.router.add_get("/stream", streamed)
    app.on_response_prepare.append(stamp_context_headers)
    c: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await c.get("/stream", headers={"X-Request-Id": "s-1"})
    assert await resp.read() == b"line\n"
    assert resp.headers["X-Request-Id"] == "s-1"
    assert resp.headers["X-Audit-Id"] == "aud_stream"
    plain = await c.get("/ok", headers={"X-Request-Id": "s-2"})
    assert plain.headers.getall("X-Request-Id") == ["s-2"]  # stamped once, not twice


@given(st.one_of(st.none(), st.text(max_size=200)))
def test_request_id_is_the_offer_or_a_fresh_uuid(offered: str | None) -> None:
    rid = request_id_for(offered)
    if offered is not None and re.fullmatch(r"[A-Za-z0-9._-]{1,128}", offered):
        assert rid == offered
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)


async def cancelled(request: web.Request) -> web.Response:
    raise asyncio.CancelledError  # what a client hang-up looks like with cancellation on


async def test_cancelled_request_is_logged_as_client_closed(
    aiohttp_client: Callable[..., Any], log_lines: list[str]
) -> None:
    app = make_app()
    app.router.add_get("/cancelled", cancelled)
    c: TestClient[Any, Any] = await aiohttp_client(app)
    with pytest.raises(aiohttp.ClientError):
        await c.get("/cancelled")
    (line,) = [x for x in access(log_lines) if x["route"] == "/cancelled"]
    assert (line["status"], line["problem_code"]) == (499, "client_closed")


async def test_answers_of_one_loop_step_are_counted_and_logged_by_one_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The edge counts and logs each answer after it is written; the answers of one
    step of the loop share one callback (not one ``call_soon`` each), in their order."""
    from service import edge

    counted: list[object] = []
    runs: list[int] = []
    count_answered = edge._count_answered

    def counting_run() -> None:
        runs.append(len(edge._answers))
        count_answered()

    monkeypatch.setattr(edge, "_count_and_log", lambda request, *rest: counted.append(request))
    monkeypatch.setattr(edge, "_count_answered", counting_run)
    first, second, third = object(), object(), object()
    edge._answered(first, None, 0.001, False)  # type: ignore[arg-type]
    edge._answered(second, None, 0.002, True)  # type: ignore[arg-type]
    assert counted == []  # not before the step that wrote the answers ends
    await asyncio.sleep(0)
    assert counted == [first, second] and runs == [2]
    edge._answered(third, None, 0.003, False)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert counted == [first, second, third] and runs == [2, 1]
