"""The shared connector core (retries, error mapping, breaker, observe) against a small
scripted aiohttp server on loopback. The per-system contracts are in test_contract.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from service.errors import (
    CircuitOpen,
    CustomerNotFound,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from service.secret import Secret
from service.upstreams.answers import parse_retry_after
from service.upstreams.settings import UpstreamSettings
from service.upstreams.transport import HttpConnector

TOKEN = "probe-token-0123456789"
Calls = list[tuple[str, str, int | None]]
RECORD = {"id": 7, "name": "Alice Example"}


class ProbeConnector(HttpConnector):
    """The smallest connector: GET and PUT/PATCH of ``items/{id}``."""

    system = "probe"
    read_coverage = frozenset({"id", "name"})
    required_credentials = ("token",)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.settings.credentials['token'].reveal()}"}

    async def fetch(self, customer_id: str) -> dict[str, Any]:
        answer = await self._call("GET", f"items/{int(customer_id)}", route="items/{id}")
        return dict(answer.body)

    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self._call(
            self.mode.upper(), f"items/{int(customer_id)}", route="items/{id}", body=body
        )
        return dict(answer.body)


@dataclass
class Script:
    """What the server does to the next requests; afterwards it answers RECORD."""

    actions: list[tuple[Any, ...]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    #: (method, path, Content-Type, Accept, body) of each request
    wire: list[tuple[str, str, str | None, str | None, bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response(status=500)


@pytest.fixture
async def server(aiohttp_server: Any) -> AsyncIterator[tuple[Script, str]]:
    script = Script()

    async def handle(request: web.Request) -> web.StreamResponse:
        script.seen.append(request.method)
        script.wire.append((
            request.method, request.path_qs, request.headers.get("Content-Type"),
            request.headers.get("Accept"), await request.read(),
        ))  # fmt: skip
        if request.headers.get("Authorization") != f"Token {TOKEN}":
            return web.json_response({"details": "Invalid token."}, status=401)
        if not script.actions:
            return web.json_response(RECORD)
        action = script.actions.pop(0)
        kind = action[0]
        if kind == "status":
            _, status, body, headers = action
            return web.json_response(body, status=status, headers=headers)
        if kind == "raw":
            return web.Response(status=action[1], body=action[2])
        if kind == "stream":  # chunked: no Content-Length
            response = web.StreamResponse(status=action[1])
            response.enable_chunked_encoding()
            await response.prepare(request)
            for chunk in action[2]:
                await response.write(chunk)
            await response.write_eof()
            return response
        if kind == "redirect":
            raise web.HTTPFound("/elsewhere")
        if kind == "reset":
            return _drop(request)
        if kind == "hang":
            await script.release.wait()
            return _drop(request)
        raise AssertionError(kind)

    app = web.Application()
    app.router.add_route("*", "/items/{id}", handle)
    app.router.add_route("*", "/elsewhere", handle)
    srv = await aiohttp_server(app)
    yield script, str(srv.make_url("/"))
    script.release.set()


def settings(base_url: str, **overrides: Any) -> UpstreamSettings:
    values: dict[str, Any] = {
        "system": "probe",
        "base_url": base_url,
        "credentials": {"token": Secret(TOKEN)},
        # generous: only the hang tests wait for it, and they set their own
        "timeout_seconds": 2.0,
        "connect_timeout_seconds": 2.0,
        "max_retries": 2,
        "backoff_max_seconds": 0.05,
        "breaker_failure_threshold": 50,
        "breaker_reset_seconds": 0.2,
    }
    values.update(overrides)
    return UpstreamSettings(**values)


@pytest.fixture
async def probe(server: tuple[Script, str]) -> AsyncIterator[tuple[ProbeConnector, Script, Calls]]:
    script, url = server
    calls: Calls = []

    def observe(system: str, method: str, status: int | None, _seconds: float) -> None:
        calls.append((system, method, status))

    connector = ProbeConnector(settings(url), observe=observe)
    yield connector, script, calls
    await connector.close()


def assert_clean(exc: BaseException) -> None:
    """No aiohttp inside, no secret or value in the message."""
    link: BaseException | None = exc
    while link is not None:  # the chain a traceback would print
        assert not type(link).__module__.startswith("aiohttp"), type(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    text = str(exc)
    assert TOKEN not in text
    assert "Alice" not in text


async def test_success_and_observe(probe: Any) -> None:
    connector, script, calls = probe
    assert await connector.fetch("7") == RECORD
    assert calls == [("probe", "GET", 200)]
    assert script.seen == ["GET"]


async def test_what_goes_on_the_wire(server: tuple[Script, str]) -> None:
    """The path joined to base_url, a write's body as JSON with its Content-Type, a read
    without either (the body is encoded by the connector, not by aiohttp's json=)."""
    script, url = server
    connector = ProbeConnector(settings(url.rstrip("/")))  # base_url without its slash
    try:
        await connector.fetch("7")
        await connector.apply("7", {"name": "Bob Example", "tags": ["ä"], "n": 2**70})
    finally:
        await connector.close()
    (get, put) = script.wire
    assert get == ("GET", "/items/7", None, "application/json", b"")
    assert put[:4] == ("PUT", "/items/7", "application/json", "application/json")
    assert json.loads(put[4]) == {"name": "Bob Example", "tags": ["ä"], "n": 2**70}


async def test_get_is_retried_after_503(probe: Any) -> None:
    connector, script, calls = probe
    script.actions.append(("status", 503, {"error": "busy"}, {}))
    assert await connector.fetch("7") == RECORD
    assert script.seen == ["GET", "GET"]
    assert [c[2] for c in calls] == [503, 200]


async def test_500_is_not_retried(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.append(("status", 500, {"error": "boom"}, {}))
    with pytest.raises(UpstreamError) as info:
        await connector.fetch("7")
    assert type(info.value) is UpstreamError
    assert info.value.upstream_status == 500
    assert script.seen == ["GET"]


@pytest.mark.parametrize("fault", [("reset",), ("raw", 200, b'{"id": 7, "na'),
                                   ("status", 502, {}, {}), ("status", 504, {}, {})])
async def test_a_put_that_was_sent_is_not_resent_and_its_outcome_is_unknown(
    probe: Any, fault: tuple[Any, ...]
) -> None:
    """Sent, no usable answer: a re-sent whole object could land after a change made in
    between and undo it (issue 8, items 6 and 14)."""
    connector, script, _ = probe
    connector.mode = "put"
    script.actions.append(fault)
    with pytest.raises(UpstreamOutcomeUnknown, match="outcome unknown") as info:
        await connector.apply("7", dict(RECORD))
    assert script.seen == ["PUT"]
    assert info.value.status == 504 and info.value.code == "upstream_timeout"
    assert_clean(info.value)


async def test_a_put_refused_with_503_is_sent_again(probe: Any) -> None:
    connector, script, calls = probe
    connector.mode = "put"
    script.actions.append(("status", 503, {}, {}))
    assert await connector.apply("7", dict(RECORD)) == RECORD
    assert script.seen == ["PUT", "PUT"]
    assert [c[2] for c in calls] == [503, 200]


@pytest.mark.parametrize("fault", [("reset",), ("raw", 200, b"[1, 2")])
async def test_a_get_whose_answer_was_lost_is_sent_again(
    probe: Any, fault: tuple[Any, ...]
) -> None:
    connector, script, _ = probe
    script.actions.append(fault)
    assert await connector.fetch("7") == RECORD
    assert script.seen == ["GET", "GET"]


@pytest.mark.parametrize("fault", [("status", 503, {}, {}), ("reset",)])
async def test_patch_is_not_retried_once_sent(probe: Any, fault: tuple[Any, ...]) -> None:
    connector, script, _ = probe
    connector.mode = "patch"
    script.actions.append(fault)
    with pytest.raises(UpstreamError) as info:
        await connector.apply("7", {"name": "x"})
    assert script.seen == ["PATCH"]
    assert_clean(info.value)


async def test_hang_gives_timeout_and_get_retries(server: tuple[Script, str]) -> None:
    script, url = server
    calls: list[int | None] = []
    connector = ProbeConnector(
        settings(url, timeout_seconds=0.2),
        observe=lambda _a, _b, status, _s: calls.append(status),
    )
    script.actions.extend([("hang",)] * 3)
    try:
        with pytest.raises(UpstreamTimeout) as info:
            await connector.fetch("7")
    finally:
        await connector.close()
    assert script.seen == ["GET"] * 3
    assert calls == [None] * 3
    assert_clean(info.value)


async def test_patch_timeout_is_not_retried(server: tuple[Script, str]) -> None:
    script, url = server
    connector = ProbeConnector(settings(url, timeout_seconds=0.2))
    connector.mode = "patch"
    script.actions.extend([("hang",)] * 3)
    try:
        with pytest.raises(UpstreamTimeout):
            await connector.apply("7", {"name": "x"})
    finally:
        await connector.close()
    assert script.seen == ["PATCH"]


async def test_unreachable_upstream_retries_even_a_patch() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls: list[int | None] = []
    connector = ProbeConnector(
        settings(f"http://127.0.0.1:{port}"),
        observe=lambda _a, _b, status, _s: calls.append(status),
    )
    connector.mode = "patch"
    try:
        with pytest.raises(UpstreamUnreachable, match="nothing was sent") as info:
            await connector.apply("7", {"name": "x"})
    finally:
        await connector.close()
    assert calls == [None, None, None]  # never sent, so safe to try again
    # provably nothing changed: 502, never the "outcome unknown" 504
    assert not isinstance(info.value, UpstreamOutcomeUnknown)
    assert info.value.status == 502
    assert_clean(info.value)


@pytest.mark.parametrize("fault", [("reset",), ("hang",), ("raw", 200, b'{"id": 7'),
                                   ("status", 504, {}, {})])
async def test_a_patch_that_was_sent_has_an_unknown_outcome(
    server: tuple[Script, str], fault: tuple[Any, ...]
) -> None:
    script, url = server
    connector = ProbeConnector(settings(url, timeout_seconds=0.2))
    connector.mode = "patch"
    script.actions.append(fault)
    try:
        with pytest.raises(UpstreamOutcomeUnknown, match="outcome unknown"):
            await connector.apply("7", {"name": "x"})
    finally:
        await connector.close()
    assert script.seen == ["PATCH"]


async def test_429_with_retry_after_is_honoured(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.append(("status", 429, {}, {"Retry-After": "0"}))
    assert await connector.fetch("7") == RECORD
    assert script.seen == ["GET", "GET"]


async def test_429_asking_too_long_gives_up_at_once(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.append(("status", 429, {}, {"Retry-After": "30"}))
    with pytest.raises(UpstreamRateLimited) as info:
        await connector.fetch("7")
    assert info.value.retry_after == 30.0
    assert script.seen == ["GET"]


async def test_429_without_retry_after_backs_off_then_gives_up(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.extend([("status", 429, {}, {})] * 5)
    with pytest.raises(UpstreamRateLimited) as info:
        await connector.fetch("7")
    assert script.seen == ["GET"] * 3
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert connector.breaker.state == "closed"


async def test_a_patch_refused_with_429_is_retried(probe: Any) -> None:
    connector, script, _ = probe
    connector.mode = "patch"
    script.actions.append(("status", 429, {}, {"Retry-After": "0"}))
    assert await connector.apply("7", {"name": "x"}) == RECORD
    assert script.seen == ["PATCH", "PATCH"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"details": "Not found."}, CustomerNotFound),
        (401, {"details": "Invalid token."}, UpstreamAuthFailed),
        (403, {"details": "Forbidden."}, UpstreamAuthFailed),
        (422, {"name": ["Alice Example is too long"]}, UpstreamRejected),
        (418, {}, UpstreamError),
    ],
)
async def test_error_mapping(probe: Any, status: int, body: Any, expected: type[Exception]) -> None:
    connector, script, _ = probe
    script.actions.append(("status", status, body, {}))
    with pytest.raises(expected) as info:
        await connector.fetch("7")
    assert_clean(info.value)
    assert script.seen == ["GET"]


async def test_rejection_names_fields_never_values(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.append(
        ("status", 400, {"name": ["Alice Example is not allowed"], "Alice Example": ["x"]}, {})
    )
    with pytest.raises(UpstreamRejected) as info:
        await connector.fetch("7")
    assert [p.field for p in info.value.errors] == ["name"]
    assert all("Alice" not in p.message for p in info.value.errors)


async def test_wrong_credentials_map_to_auth_failed(server: tuple[Script, str]) -> None:
    _, url = server
    connector = ProbeConnector(settings(url, credentials={"token": Secret("wrong-token")}))
    try:
        with pytest.raises(UpstreamAuthFailed) as info:
            await connector.fetch("7")
    finally:
        await connector.close()
    assert "wrong-token" not in str(info.value)
    assert connector.breaker.state == "closed"


async def test_malformed_answer(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.extend([("raw", 200, b"<html>not json")] * 3)
    with pytest.raises(UpstreamError) as info:
        await connector.fetch("7")
    assert "malformed" in str(info.value)


async def test_breaker_opens_refuses_and_recovers(server: tuple[Script, str]) -> None:
    script, url = server
    states: list[str] = []
    connector = ProbeConnector(
        settings(url, breaker_failure_threshold=2, max_retries=0, breaker_reset_seconds=1.0)
    )
    connector.breaker.on_change = states.append
    try:
        script.actions.extend([("status", 404, {}, {})] * 3)  # 4xx: not failures
        for _ in range(3):
            with pytest.raises(CustomerNotFound):
                await connector.fetch("7")
        assert connector.breaker.state == "closed"
        script.actions.extend([("status", 503, {}, {})] * 2)
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await connector.fetch("7")
        assert connector.breaker.state == "open"
        before = len(script.seen)
        with pytest.raises(CircuitOpen) as info:
            await connector.fetch("7")
        assert len(script.seen) == before  # not attempted
        assert info.value.retry_after is not None
        await asyncio.sleep(1.05)
        assert connector.breaker.state == "half_open"
        assert await connector.fetch("7") == RECORD
        assert connector.breaker.state == "closed"
        assert states == ["open", "half_open", "closed"]
    finally:
        await connector.close()


async def test_breaker_refusal_during_retries_raises_the_real_error(
    server: tuple[Script, str],
) -> None:
    script, url = server
    connector = ProbeConnector(settings(url, breaker_failure_threshold=2, max_retries=5))
    try:
        script.actions.extend([("status", 503, {}, {})] * 5)
        with pytest.raises(UpstreamError) as info:
            await connector.fetch("7")
        assert not isinstance(info.value, CircuitOpen)
        assert info.value.upstream_status == 503
        assert script.seen == ["GET", "GET"]
    finally:
        await connector.close()


async def test_closed_connector_refuses_and_close_is_idempotent(probe: Any) -> None:
    connector, _, _ = probe
    await connector.fetch("7")
    await connector.close()
    await connector.close()
    with pytest.raises(UpstreamError, match="closed"):
        await connector.fetch("7")


def test_missing_credentials_are_named_not_shown() -> None:
    with pytest.raises(ValueError, match="token"):
        ProbeConnector(settings("http://127.0.0.1:1", credentials={}))


def test_repr_shows_no_secret() -> None:
    connector = ProbeConnector(settings("http://127.0.0.1:1"))
    assert TOKEN not in repr(connector)
    assert TOKEN not in repr(connector.settings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 0 ", 0.0), (None, None), ("soon", None), ("-1", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    seconds = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    assert seconds == 0.0  # in the past: no wait


async def test_redirects_are_not_followed(probe: Any) -> None:
    connector, script, _ = probe
    script.actions.append(("redirect",))
    with pytest.raises(UpstreamError) as info:
        await connector.fetch("7")
    assert info.value.upstream_status == 302
    assert script.seen == ["GET"]  # the credentials never went to the new location


@pytest.mark.parametrize("raw", [b'{"id": NaN}', b'{"id": Infinity}', b"[1, 2"])
async def test_answers_that_are_not_json_are_malformed(probe: Any, raw: bytes) -> None:
    connector, script, _ = probe
    script.actions.extend([("raw", 200, raw)] * 3)
    with pytest.raises(UpstreamError, match="malformed"):
        await connector.fetch("7")


async def test_oversized_answers_are_refused(
    probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector, script, calls = probe
    monkeypatch.setattr("service.upstreams.answers.MAX_ANSWER_BYTES", 1000)
    script.actions.extend([("raw", 200, b'{"x": "' + b"a" * 5000 + b'"}')] * 3)
    with pytest.raises(UpstreamError, match="too large"):
        await connector.fetch("7")
    assert [c[2] for c in calls] == [None] * 3


async def test_a_chunked_answer_is_read_and_bounded_too(
    probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a Content-Length the body is counted as it arrives."""
    connector, script, calls = probe
    monkeypatch.setattr("service.upstreams.answers.MAX_ANSWER_BYTES", 1000)
    script.actions.append(("stream", 200, [b'{"id": 7, ', b'"name": "Alice Example"}']))
    assert await connector.fetch("7") == RECORD
    script.actions.extend([("stream", 200, [b'{"x": "', b"a" * 600, b"a" * 600, b'"}'])] * 3)
    with pytest.raises(UpstreamError, match="too large"):
        await connector.fetch("7")
    assert [c[2] for c in calls] == [200, None, None, None]
