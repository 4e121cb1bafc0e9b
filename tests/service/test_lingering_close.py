"""The lingering close (``service.server.GatewayProtocol``): an answer that closes the
connection reaches a client that is still sending.

When a server closes a socket while the client's bytes keep arriving (or some are still
unread in its buffer), the kernel answers them with a reset, and the client's stack drops
what it had not read yet - the answer included. These tests send the way such a client
does: the request is refused early, and the client keeps writing, without a pause, until
it has read the whole answer and the end of the connection. Real sockets on loopback, the
gateway served by ``GatewayRunner`` in front of the emulators (``tests.service.test_http_edge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service import server as server_module
from tests.service.test_http_edge import PATCH_HEAD, UNREADABLE, WAIT, listening, parse

CHUNK = b" " * 4096  # what the client keeps sending after the answer started
BODY_LIMIT = 65536  # the server's here: the stalled body below is allowed (no 413)
STALLED = {"body_timeout_seconds": 0.3, "body_limit_bytes": BODY_LIMIT}
STALLED_BODY = PATCH_HEAD + b"Content-Length: %d\r\n\r\n{" % BODY_LIMIT  # then nothing
REFUSED_EARLY = {  # answers that leave before the request's end, and close the connection
    # case: request, status, code, whether the client sends on from the start (an
    # unreadable request) or only once the answer came (else the body would not stall)
    "408_body_timeout": (STALLED_BODY, 408, "request_timeout", False),
    "400_bad_chunk_size": (UNREADABLE["bad_chunk_size"], 400, "bad_request", True),
    "400_header_too_long": (UNREADABLE["64k_header"], 400, "bad_request", True),
}


async def _keep_sending(writer: asyncio.StreamWriter) -> None:
    """Write without a pause (a yield between chunks, so the reader sees what arrives)
    until the connection breaks; a broken connection is raised."""
    while True:
        writer.write(CHUNK)
        await writer.drain()
        await asyncio.sleep(0)  # a yield, not a wait


@contextlib.asynccontextmanager
async def connected(port: int, request: bytes) -> AsyncIterator[Connection]:
    """A connection on which ``request`` was sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        yield Connection(reader, writer)
    finally:
        writer.close()


@dataclasses.dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def head(self) -> bytes:
        """The answer's status line and headers."""
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)


@pytest.mark.parametrize("case", REFUSED_EARLY)
async def test_an_early_answer_reaches_a_client_that_keeps_sending(
    tmp_path: Path, case: str
) -> None:
    """The client sends on, without a pause, until it has read the whole answer and the
    end of the connection: a reset in between fails the read."""
    request, status, code, from_the_start = REFUSED_EARLY[case]
    async with listening(tmp_path, **STALLED) as server:
        for _ in range(5):  # without the lingering close, each round is a reset
            async with connected(server.port, request) as conn:
                sending = None
                if from_the_start:
                    sending = asyncio.ensure_future(_keep_sending(conn.writer))
                try:
                    head = await conn.head()
                    sending = sending or asyncio.ensure_future(_keep_sending(conn.writer))
                    rest = await asyncio.wait_for(conn.reader.read(), WAIT)  # body, then end
                finally:
                    if sending is not None:
                        sending.cancel()
                        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                            await sending
                answer = parse(head + rest, conn.reader.at_eof())
            assert answer.status == status
            assert answer.problem()["code"] == code
            assert answer.closed  # after the whole answer
        assert await server.forwarded() == 0


@contextlib.asynccontextmanager
async def answered_408(tmp_path: Path) -> AsyncIterator[Connection]:
    """A connection whose body stalled, once the head of its 408 has arrived: the server
    is in its lingering close."""
    async with (
        listening(tmp_path, **STALLED) as server,
        connected(server.port, STALLED_BODY) as conn,
    ):
        assert (await conn.head()).startswith(b"HTTP/1.1 408 ")
        yield conn


async def test_the_lingering_close_drops_a_bounded_number_of_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends on and never reads: once LINGER_MAX_BYTES are dropped, the
    server lets go (the time bound is set out of reach here)."""
    monkeypatch.setattr(server_module, "LINGER_SECONDS", 3600.0)
    async with answered_408(tmp_path) as conn:
        with pytest.raises(ConnectionError):  # the server closed; the rest was reset
            await asyncio.wait_for(_keep_sending(conn.writer), WAIT)


async def test_the_lingering_close_lasts_a_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends a byte now and then, far below the byte bound, and never
    closes: after LINGER_SECONDS the server lets go, and a write after that breaks."""
    monkeypatch.setattr(server_module, "LINGER_SECONDS", 0.2)

    async def trickle(writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)  # pacing, not a measurement

    async with answered_408(tmp_path) as conn:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(trickle(conn.writer), WAIT)


def test_only_an_answer_that_closes_goes_the_lingering_way() -> None:
    """An answer that keeps the connection alive is finished by aiohttp's own coroutine,
    with no frame of ours around it; one that closes it (``force_close``, or a request
    of HTTP/1.0) by the lingering one; an error aiohttp raised before the
    middlewares becomes a problem before either."""
    from aiohttp import HttpVersion10, web
    from aiohttp.test_utils import make_mocked_request

    protocol = server_module.GatewayProtocol.__new__(server_module.GatewayProtocol)
    own = web.RequestHandler.finish_response.__code__
    lingering = server_module.GatewayProtocol._finish_and_linger.__code__

    def finisher(request: web.BaseRequest, resp: web.StreamResponse) -> tuple[object, object]:
        coro = protocol.finish_response(request, resp, None)
        try:
            return coro.cr_code, coro.cr_frame.f_locals["resp"]  # type: ignore[attr-defined]
        finally:
            coro.close()  # type: ignore[attr-defined]

    kept = make_mocked_request("PATCH", "/v1/systems/keycom/customers/1")
    assert finisher(kept, web.Response(text="ok"))[0] is own
    closing = web.Response(text="ok")
    closing.force_close()
    assert finisher(kept, closing)[0] is lingering
    asked = make_mocked_request("PATCH", "/x", version=HttpVersion10)  # closes after
    assert finisher(asked, web.Response(text="ok"))[0] is lingering
    code, answer = finisher(kept, web.HTTPExpectationFailed(text="Expect: quoted"))
    assert code is lingering and isinstance(answer, web.Response)  # it closes
    assert answer.status == 400 and answer.content_type == "application/problem+json"
    assert answer.headers["Server"] == "gdpr-gateway" and not answer.keep_alive
