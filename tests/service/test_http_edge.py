"""The HTTP edge of a real listening server: what aiohttp's parser refuses, stalled bodies,
log floods, keep-alive (issue 8, items 10, 11, 12, 15).

aiohttp's test client normalises what it sends, so these tests speak raw bytes over
asyncio streams to the gateway served by ``service.server.GatewayRunner`` - the runner
``serve`` and ``demo`` use - on a loopback port, in front of the emulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from service.app import create_app
from service.commands.demo import serve_demo
from service.config import ConfigError, load_settings
from service.demo_settings import demo_settings
from service.emulators import EmulatorCluster
from service.logs import LogLimiter
from service.registry import SYSTEMS
from service.server import GatewayRunner, server_kwargs, start
from service.settings import Settings
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import write_config

MARKER = b"ECHO-ME-BACK"  # in every bad request: it must never come back
PATCH_HEAD = (
    b"PATCH /v1/systems/billbee/customers/1002 HTTP/1.1\r\nHost: gw\r\n"
    b"Authorization: Bearer demo-editor\r\nX-Purpose: customer_service\r\n"
    b"Content-Type: application/json\r\n"
)
WAIT = 10.0  # the longest any exchange may take before the test gives up (not a timing)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.msg == name]


@dataclasses.dataclass
class Listening:
    port: int
    settings: Settings
    cluster: EmulatorCluster
    logs: Records
    clock: Clock

    async def forwarded(self) -> int:
        """Writes that reached any emulator."""
        total = 0
        async with ClientSession() as session:
            for url in self.cluster.urls.values():
                async with session.get(f"{url}/_emulator/stats") as resp:
                    counts = (await resp.json())["requests"]
                    total += counts.get("PUT", 0) + counts.get("PATCH", 0)
        return total


@contextlib.contextmanager
def captured() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("gdpr_gateway", "aiohttp", "audit")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


@contextlib.asynccontextmanager
async def listening(tmp_path: Path, **overrides: Any) -> AsyncIterator[Listening]:
    cluster = EmulatorCluster(base_port=0, rate_limit=False)
    await cluster.start()
    try:
        settings = demo_settings(
            port=0,
            state_dir=tmp_path,
            upstream_urls=cluster.urls,
            audit_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
            master_key=os.urandom(32),
            signing_key=os.urandom(32),
        )
        settings = dataclasses.replace(settings, **overrides)
        clock = Clock()
        with captured() as logs:
            limiter = LogLimiter(
                logging.getLogger("gdpr_gateway.http"), burst=10, interval=60.0, clock=clock
            )
            runner = GatewayRunner(create_app(settings, migrate=True), settings, limiter=limiter)
            try:
                await start(runner, "127.0.0.1", 0)
                port = runner.addresses[0][1]
                yield Listening(port, settings, cluster, logs, clock)
            finally:
                await runner.cleanup()
    finally:
        await cluster.stop()


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes
    closed: bool

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith("application/problem+json")
        body: dict[str, Any] = json.loads(self.body)
        assert body["status"] == self.status
        return body


def parse(raw: bytes, closed: bool) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return Answer(status, headers, body[:length], raw, closed)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One answer; ``closed`` when the server closed the connection after it."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    answer = parse(head, False)
    length = int(answer.headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), WAIT)
    rest = b""
    if answer.headers.get("connection", "").lower() == "close" or head.startswith(b"HTTP/1.0"):
        rest = await asyncio.wait_for(reader.read(), WAIT)  # EOF, or the test gives up
    return dataclasses.replace(
        answer, body=body, raw=head + body + rest, closed=rest == b"" and reader.at_eof()
    )


async def send(port: int, data: bytes) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_answer(reader)
    finally:
        writer.close()


def assert_bad_request(answer: Answer) -> None:
    assert answer.status == 400
    assert answer.problem()["code"] == "bad_request"
    assert MARKER not in answer.raw  # nothing of the request comes back
    assert answer.headers["server"] == "gdpr-gateway"
    assert b"aiohttp" not in answer.raw and b"Python" not in answer.raw
    assert answer.headers["x-request-id"]
    assert answer.closed


def _chunked_gzip_garbage() -> bytes:
    return (
        PATCH_HEAD.replace(b"Authorization: Bearer demo-editor\r\n", b"")
        + b"Content-Encoding: gzip\r\nContent-Length: 12\r\n\r\n"
        + MARKER
    )


UNREADABLE = {
    "64k_header": b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: " + MARKER * 5500 + b"\r\n\r\n",
    "100k_url": b"GET /" + MARKER * 8600 + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
    "200_headers": b"GET /healthz HTTP/1.1\r\nHost: gw\r\n"
    + b"".join(b"X-%d: " % i + MARKER + b"\r\n" for i in range(200))
    + b"\r\n",
    "bad_chunk_size": PATCH_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    + MARKER + b"\r\n{}\r\n0\r\n\r\n",
    "bad_content_length": b"PATCH /v1/systems/billbee/customers/1002 HTTP/1.1\r\nHost: gw\r\n"
    b"Content-Length: " + MARKER + b"\r\n\r\n",
    "control_in_header": b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: \x01" + MARKER + b"\r\n\r\n",
    "bad_version": b"GET /healthz HTTP/9." + MARKER + b"\r\nHost: gw\r\n\r\n",
    "bad_method": b"G\x01T /" + MARKER + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
    "tls_on_plain_port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + MARKER,
}


@pytest.mark.parametrize("raw", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_a_request_aiohttp_cannot_parse_gets_a_problem_without_echo(
    tmp_path: Path, raw: bytes
) -> None:
    async with listening(tmp_path) as server:
        answer = await send(server.port, raw)
        assert_bad_request(answer)
        assert await server.forwarded() == 0


async def test_every_answer_names_no_framework_or_version(tmp_path: Path) -> None:
    async with listening(tmp_path) as server:
        for path in (b"/healthz", b"/v1/systems", b"/no/such/route"):
            answer = await send(server.port, b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert answer.headers["server"] == "gdpr-gateway", path
            assert b"aiohttp" not in answer.raw and b"Python" not in answer.raw


async def test_an_unknown_expectation_is_a_problem_without_echo(tmp_path: Path) -> None:
    """aiohttp checks ``Expect`` before any middleware and answered ``417 text/plain``
    quoting the header."""
    raw = PATCH_HEAD + b"Expect: " + MARKER + b"\r\nContent-Length: 2\r\n\r\n{}"
    async with listening(tmp_path) as server:
        answer = await send(server.port, raw)
        assert answer.status == 400
        assert answer.problem()["code"] == "bad_request"
        assert MARKER not in answer.raw
        assert answer.headers["server"] == "gdpr-gateway"
        assert await server.forwarded() == 0
        # the one expectation HTTP/1.1 defines still works
        body = json.dumps({"Tel1": "+49 30 1"}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(
                PATCH_HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            await writer.drain()
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == (
                b"HTTP/1.1 100 Continue\r\n\r\n"
            )
            writer.write(body)
            assert (await read_answer(reader)).status == 200
        finally:
            writer.close()


async def test_the_header_limits_are_settings(tmp_path: Path) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: " + b"a" * 12000 + b"\r\n\r\n"
    many = (
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(40))
        + b"\r\n"
    )
    async with listening(tmp_path) as server:  # defaults: 8190 bytes, 100 headers
        assert (await send(server.port, big)).status == 400
        assert (await send(server.port, many)).status == 200
    async with listening(tmp_path, header_limit_bytes=16384, header_count_limit=32) as server:
        assert (await send(server.port, big)).status == 200
        assert_bad_request(await send(server.port, many))


async def test_a_purpose_header_over_the_limit_is_refused_at_the_edge(tmp_path: Path) -> None:
    raw = (
        b"GET /v1/systems/billbee/customers/1002 HTTP/1.1\r\nHost: gw\r\n"
        b"Authorization: Bearer demo-editor\r\nX-Purpose: " + MARKER * 1000 + b"\r\n\r\n"
    )
    async with listening(tmp_path) as server:
        assert_bad_request(await send(server.port, raw))


# ---- stalled requests (item 11) ---------------------------------------------------------


async def test_a_stalled_chunked_body_gets_408_and_the_connection_closes(tmp_path: Path) -> None:
    async with listening(tmp_path, body_timeout_seconds=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            # the editor's PATCH of the report: a chunked body that stops after one chunk
            writer.write(PATCH_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"Tel\r\n")
            await writer.drain()
            answer = await read_answer(reader)
        finally:
            writer.close()
        assert answer.status == 408
        body = answer.problem()
        assert body["code"] == "request_timeout"
        assert body["detail"] == "the body did not arrive within the configured time"
        assert answer.headers["connection"] == "close"
        assert answer.closed  # the server let go of the connection
        assert await server.forwarded() == 0


async def test_a_body_that_trickles_in_is_bounded_as_a_whole(tmp_path: Path) -> None:
    """One byte now and then keeps each read short; the bound is on the whole body."""
    async with listening(tmp_path, body_timeout_seconds=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = json.dumps({"Tel1": "+49 30 1234567"}).encode() + b" " * 200
        writer.write(PATCH_HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
        answer_task = asyncio.ensure_future(read_answer(reader))
        try:
            with contextlib.suppress(ConnectionError):  # the server may hang up first
                for byte in body:
                    if answer_task.done():
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)
            answer = await answer_task
        finally:
            answer_task.cancel()
            writer.close()
        assert answer.status == 408
        assert answer.problem()["code"] == "request_timeout"
        assert await server.forwarded() == 0


async def test_a_request_head_that_never_ends_is_closed(tmp_path: Path) -> None:
    """No hook to answer there: the keep-alive timer closes the connection, silently."""
    async with listening(tmp_path, keepalive_timeout_seconds=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"PATCH /v1/systems/billbee/customers/1002 HTTP/1.1\r\nHost: gw\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed, no answer
        finally:
            writer.close()


async def test_a_body_in_time_is_not_cut(tmp_path: Path) -> None:
    async with listening(tmp_path, body_timeout_seconds=5.0) as server:
        body = json.dumps({"Tel1": "+49 30 7654321"}).encode()
        answer = await send(
            server.port,
            PATCH_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n",
        )
        assert answer.status == 200
        assert await server.forwarded() == 1


# ---- logs a client can cause (item 12) ---------------------------------------------------


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as fh:
        fh.write(data)
    return buf.getvalue()


CHEAP_ABUSE = {
    # unauthenticated, each of which logged an ERROR with a stack trace
    "parser_error": UNREADABLE["64k_header"],
    "bad_chunk": UNREADABLE["bad_chunk_size"],
    "non_utf8_token": b"GET /v1/systems HTTP/1.1\r\nHost: gw\r\n"
    b"Authorization: Bearer d\xe4mo\r\n\r\n",
    "broken_gzip_unauthenticated": _chunked_gzip_garbage(),
    "jwt_shaped_garbage": b"GET /v1/systems HTTP/1.1\r\nHost: gw\r\n"
    b"Authorization: Bearer a.b.c\r\n\r\n",
}


async def test_cheap_malformed_requests_log_a_limited_warning_without_a_trace(
    tmp_path: Path,
) -> None:
    async with listening(tmp_path) as server:
        statuses: dict[str, set[int]] = {}
        for _round in range(6):
            for name, raw in CHEAP_ABUSE.items():
                answer = await send(server.port, raw)
                statuses.setdefault(name, set()).add(answer.status)
                assert answer.status < 500, name
        assert statuses["non_utf8_token"] == {401}  # was 500
        assert statuses["broken_gzip_unauthenticated"] == {401}
        assert statuses["parser_error"] == {400}

        records = server.logs.records
        assert not [r for r in records if r.levelno >= logging.ERROR]
        assert not [r for r in records if r.exc_info]  # no stack traces
        protocol = [r for r in records if r.name == "gdpr_gateway.http"]
        assert len(protocol) == 10  # the burst of the window; the rest held back
        held = 6 * 3 - 10  # parser error, bad chunk, broken gzip: one protocol line each
        assert all(r.levelno == logging.WARNING for r in protocol)

        server.clock.now += 61  # the next window: the count of what was held back
        assert_bad_request(await send(server.port, UNREADABLE["64k_header"]))
        summary = server.logs.events("log_lines_suppressed")
        assert len(summary) == 1
        fields = summary[0].gdpr_fields  # type: ignore[attr-defined]
        assert fields["count"] == held


async def test_a_body_cut_short_is_400_not_an_error(tmp_path: Path) -> None:
    """The client hangs up mid-body: nobody to answer, but no 500 and no ERROR either."""
    async with listening(tmp_path) as server:
        for _ in range(3):
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(PATCH_HEAD + b"Content-Length: 100\r\n\r\n{\"Tel1\"")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        for _ in range(100):
            lines = server.logs.events("http_request")
            if len(lines) == 3:
                break
            await asyncio.sleep(0.05)
        assert [r.gdpr_fields["status"] for r in lines] == [400] * 3  # type: ignore[attr-defined]
        assert not [r for r in server.logs.records if r.levelno >= logging.ERROR]
        assert await server.forwarded() == 0


async def test_a_broken_compressed_body_is_400(tmp_path: Path) -> None:
    good = _gzip(b'{"Tel1": "+49 30 1"}')
    broken = good[:10] + MARKER + good[10:]
    async with listening(tmp_path) as server:
        answer = await send(
            server.port,
            PATCH_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(broken)
            + broken,
        )
        assert_bad_request(answer)
        assert not [r for r in server.logs.records if r.levelno >= logging.ERROR]


# ---- one keep-alive for serve and demo (item 15) ----------------------------------------


URLS = {s: f"http://127.0.0.1:{9000 + i}" for i, s in enumerate(SYSTEMS)}


def test_the_server_settings_are_read_and_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path, URLS, 8080)
    env = {
        "GDPR_GATEWAY_BODY_TIMEOUT_SECONDS": "2.5",
        "GDPR_GATEWAY_KEEPALIVE_TIMEOUT_SECONDS": "20",
        "GDPR_GATEWAY_HEADER_LIMIT_BYTES": "16384",
        "GDPR_GATEWAY_HEADER_COUNT_LIMIT": "50",
    }
    settings = load_settings(config, env)
    assert settings.body_timeout_seconds == 2.5
    kwargs = server_kwargs(settings)
    assert (kwargs["keepalive_timeout"], kwargs["max_field_size"], kwargs["max_line_size"],
            kwargs["max_headers"]) == (20.0, 16384, 16384, 50)
    bad = dict.fromkeys(env, "0")
    with pytest.raises(ConfigError) as exc:
        load_settings(config, bad)
    assert len(exc.value.errors) == 4
    for name in env:
        assert any(e.startswith(name) for e in exc.value.errors), name


def test_serve_and_demo_get_the_same_server_settings(tmp_path: Path) -> None:
    urls = URLS
    serve = load_settings(write_config(tmp_path, urls, 8080), {})
    demo = demo_settings(
        port=8080, state_dir=tmp_path / "demo", upstream_urls=urls,
        audit_url="sqlite+aiosqlite:///x.db", master_key=b"k" * 32, signing_key=b"s" * 32,
    )
    assert server_kwargs(serve) == server_kwargs(demo)
    assert server_kwargs(demo)["keepalive_timeout"] == 75.0  # not aiohttp's 3,630 s


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout(tmp_path: Path) -> None:
    async with listening(tmp_path, keepalive_timeout_seconds=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            await writer.drain()
            answer = await read_answer(reader)
            assert answer.status == 200 and not answer.closed  # kept alive ...
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # ... then closed
        finally:
            writer.close()


async def test_the_demo_runs_on_the_shared_server(tmp_path: Path) -> None:
    port = free_block()
    stop = asyncio.Event()
    out = io.StringIO()
    demo = asyncio.ensure_future(serve_demo("127.0.0.1", port, tmp_path / "state", out=out,
                                            stop=stop))
    try:
        for _ in range(200):
            if "listening" in out.getvalue() or demo.done():
                break
            await asyncio.sleep(0.05)
        assert "listening" in out.getvalue()
        assert_bad_request(await send(port, UNREADABLE["200_headers"]))
    finally:
        stop.set()
        await asyncio.wait_for(demo, WAIT * 3)
