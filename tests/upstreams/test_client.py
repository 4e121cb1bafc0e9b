"""The connectors' own HTTP client (service/upstreams/client.py) on the wire: real TLS,
keep-alive reuse, the pool limit, connections the server closes, under asyncio and uvloop.

The server here is a few lines of asyncio so that it can count connections and close
them where a test needs it; its answers are the probe's record."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.errors import UpstreamOutcomeUnknown, UpstreamTimeout, UpstreamUnreachable
from service.upstreams import client
from tests.upstreams.test_transport import RECORD, TOKEN, ProbeConnector, settings


@dataclass
class Wire:
    """A tiny HTTP/1.1 server: counts connections and requests; ``plan`` says what to do
    with the next requests ("ok", "close-after": answer with Connection: close, "drop":
    close without answering, "double": the answer twice); ``hold`` delays answers until set."""

    plan: list[str] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[str, int]] = field(default_factory=list)  # (method, connection)
    raw: list[bytes] = field(default_factory=list)  # each request as it came: head and body
    hold: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ")[0]
                headers = dict(
                    (k.strip().lower(), v.strip())
                    for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
                )  # fmt: skip
                content = await reader.readexactly(int(headers.get("content-length", "0")))
                self.raw.append(head + content)
                self.requests.append((method, number))
                assert headers["authorization"] == f"Token {TOKEN}"
                action = self.plan.pop(0) if self.plan else "ok"
                if action == "drop":
                    return
                await self.hold.wait()
                body = json.dumps(RECORD).encode()
                close = action == "close-after"
                answer = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + b"Content-Length: %d\r\n\r\n" % len(body) + body
                )
                writer.write(answer * 2 if action == "double" else answer)
                await writer.drain()
                if close:
                    return
        finally:
            self.open_now -= 1
            writer.close()


async def serve(wire: Wire, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(wire.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    return server, f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{port}/"


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Wire, str]]:
    w = Wire()
    w.hold.set()
    server, url = await serve(w)
    yield w, url
    w.hold.set()
    server.close()


async def test_keep_alive_connection_is_reused(wire: tuple[Wire, str]) -> None:
    w, url = wire
    connector = ProbeConnector(settings(url))
    try:
        for _ in range(3):
            assert await connector.fetch("7") == RECORD
        await connector.apply("7", {"name": "Bob Example"})
    finally:
        await connector.close()
    assert w.requests == [("GET", 1), ("GET", 1), ("GET", 1), ("PUT", 1)]


async def test_request_bytes_on_the_wire(wire: tuple[Wire, str]) -> None:
    """The request as sent: the request line, the pool's headers in their order, and for
    a write its Content-Type, Content-Length and the body, nothing else."""
    w, url = wire
    connector = ProbeConnector(settings(url))
    try:
        await connector.fetch("7")
        await connector.apply("7", {"name": "Bob Example"})
    finally:
        await connector.close()
    host = url.removeprefix("http://").rstrip("/")
    common = (
        f"Host: {host}\r\nAuthorization: Token {TOKEN}\r\nAccept: application/json\r\n"
        "User-Agent: gdpr-gateway\r\n"
    ).encode()
    body = b'{"name":"Bob Example"}'
    assert w.raw == [
        b"GET /items/7 HTTP/1.1\r\n" + common + b"\r\n",
        b"PUT /items/7 HTTP/1.1\r\n" + common + b"Content-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body) + body,
    ]


async def test_connection_close_answer_is_not_reused(wire: tuple[Wire, str]) -> None:
    w, url = wire
    w.plan = ["close-after", "ok"]
    connector = ProbeConnector(settings(url))
    try:
        assert await connector.fetch("7") == RECORD
        assert await connector.fetch("7") == RECORD
    finally:
        await connector.close()
    assert w.requests == [("GET", 1), ("GET", 2)]


async def test_pool_limit_caps_open_connections(wire: tuple[Wire, str]) -> None:
    w, url = wire
    w.hold.clear()
    connector = ProbeConnector(settings(url))
    connector.pool_limit = 2
    try:
        calls = [asyncio.create_task(connector.fetch("7")) for _ in range(6)]
        for _ in range(200):  # until the two connections carry a request each
            if len(w.requests) >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(w.requests) == 2  # the others wait for a connection
        w.hold.set()
        assert await asyncio.gather(*calls) == [RECORD] * 6
    finally:
        await connector.close()
    assert w.most_open == 2 and w.connections == 2
    assert len(w.requests) == 6


async def test_waiting_for_a_connection_past_the_connect_timeout_sends_nothing(
    wire: tuple[Wire, str],
) -> None:
    w, url = wire
    w.hold.clear()
    connector = ProbeConnector(settings(url, connect_timeout_seconds=0.2, max_retries=0))
    connector.pool_limit = 1
    try:
        first = asyncio.create_task(connector.fetch("7"))
        for _ in range(200):  # until the one connection carries the first request
            if w.requests:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(UpstreamUnreachable, match="nothing was sent"):
            await connector.fetch("7")
        w.hold.set()
        assert await first == RECORD
    finally:
        await connector.close()
    assert len(w.requests) == 1


async def test_an_answer_late_on_a_kept_alive_connection_times_out(
    wire: tuple[Wire, str],
) -> None:
    """The common path (a free slot, an idle connection: no wait before the request)
    still bounds the answer by ``timeout_seconds``; the late connection is not reused."""
    w, url = wire
    connector = ProbeConnector(settings(url, timeout_seconds=0.2, max_retries=0))
    try:
        assert await connector.fetch("7") == RECORD  # leaves its connection idle
        w.hold.clear()
        with pytest.raises(UpstreamTimeout):
            await connector.fetch("7")
        w.hold.set()
        assert await connector.fetch("7") == RECORD
    finally:
        await connector.close()
    assert [number for _, number in w.requests] == [1, 1, 2]


async def test_a_second_answer_to_one_request_ends_the_connection(
    wire: tuple[Wire, str],
) -> None:
    """An answer nobody asked for (here right behind the real one) is not taken for the
    next request's: the connection is dropped and the next request gets a new one."""
    w, url = wire
    w.plan = ["ok", "double"]
    connector = ProbeConnector(settings(url))
    try:
        assert await connector.fetch("7") == RECORD
        assert await connector.fetch("7") == RECORD  # the first of the two answers
        assert await connector.fetch("7") == RECORD
    finally:
        await connector.close()
    assert [number for _, number in w.requests] == [1, 1, 2]


async def test_server_closing_a_kept_alive_connection(wire: tuple[Wire, str]) -> None:
    """The server takes the next request on a kept-alive connection and closes it without
    answering: a GET is sent again (on a new connection); a write's outcome is unknown
    and it is not re-sent."""
    w, url = wire
    connector = ProbeConnector(settings(url))
    connector.mode = "patch"
    try:
        assert await connector.fetch("7") == RECORD
        w.plan = ["drop"]
        assert await connector.fetch("7") == RECORD
        w.plan = ["drop"]
        with pytest.raises(UpstreamOutcomeUnknown, match="outcome unknown"):
            await connector.apply("7", {"name": "Bob Example"})
        assert await connector.fetch("7") == RECORD
    finally:
        await connector.close()
    assert w.requests == [("GET", 1), ("GET", 1), ("GET", 2), ("PATCH", 2), ("GET", 3)]


async def test_closed_connector_closes_its_connections(wire: tuple[Wire, str]) -> None:
    w, url = wire
    connector = ProbeConnector(settings(url))
    assert await connector.fetch("7") == RECORD
    await connector.close()
    for _ in range(200):
        if w.open_now == 0:
            break
        await asyncio.sleep(0.01)
    assert w.open_now == 0


def test_reuse_under_uvloop() -> None:
    """The gateway runs on uvloop, whose transports are not asyncio's classes."""

    async def run() -> list[tuple[str, int]]:
        w = Wire()
        w.hold.set()
        server, url = await serve(w)
        connector = ProbeConnector(settings(url))
        try:
            for _ in range(2):
                assert await connector.fetch("7") == RECORD
        finally:
            await connector.close()
            server.close()
        return w.requests

    assert uvloop.run(run()) == [("GET", 1), ("GET", 1)]


# -- real TLS ----------------------------------------------------------------------------


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, bytes]:
    """A self-signed certificate for localhost/127.0.0.1: the server's context and the
    certificate (PEM) a client trusts as its CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server, pem


async def test_https_upstream_with_a_trusted_ca(tmp_path: Path) -> None:
    server_tls, pem = _tls(tmp_path)
    w = Wire()
    w.hold.set()
    server, url = await serve(w, server_tls)
    trusting = ssl.create_default_context(cadata=pem.decode())
    connector = ProbeConnector(settings(url), ssl_context=trusting)
    try:
        assert await connector.fetch("7") == RECORD
        assert await connector.apply("7", {"name": "Bob Example"}) == RECORD
    finally:
        await connector.close()
        server.close()
    assert w.requests == [("GET", 1), ("PUT", 1)]  # one TLS connection, kept alive


async def test_https_upstream_is_verified_by_default(tmp_path: Path) -> None:
    """Without the test's CA the self-signed certificate is refused before anything is
    sent (the default context: the system's CAs, hostname checked)."""
    server_tls, _ = _tls(tmp_path)
    w = Wire()
    w.hold.set()
    server, url = await serve(w, server_tls)
    connector = ProbeConnector(settings(url, max_retries=0))
    try:
        with pytest.raises(UpstreamUnreachable, match="nothing was sent") as info:
            await connector.fetch("7")
    finally:
        await connector.close()
        server.close()
    assert w.requests == []
    assert TOKEN not in str(info.value)




async def test_a_connection_idle_past_the_keep_alive_time_is_not_reused(
    wire: tuple[Wire, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection idle longer than the pool keeps one is closed, not written to: the
    server may be closing it at that moment, which would leave a write's outcome unknown."""
    monkeypatch.setattr(client, "KEEPALIVE_SECONDS", 0.05)
    w, url = wire
    connector = ProbeConnector(settings(url))
    try:
        assert await connector.fetch("7") == RECORD
        assert await connector.fetch("7") == RECORD  # at once: the same connection
        await asyncio.sleep(0.2)
        await connector.apply("7", {"name": "Bob Example"})
    finally:
        await connector.close()
    assert w.requests == [("GET", 1), ("GET", 1), ("PUT", 2)]
