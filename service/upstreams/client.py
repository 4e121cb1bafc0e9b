"""A lean HTTP/1.1 client for the upstream calls: asyncio connections, httptools' parser.

One :class:`Pool` per connector holds keep-alive connections to its one origin (at most
``limit`` open, idle ones reused last-in first-out). A request is one prebuilt bytes
write; the answer is parsed by ``httptools`` (llhttp: Content-Length and chunked bodies,
keep-alive) and bounded by ``MAX_ANSWER_BYTES``. Redirects are not followed, nothing is
decompressed (no ``Accept-Encoding`` is sent), nothing is re-sent (the retry policy is
the connector's). A connection is reused only after a whole answer was read on it and
neither side asked to close; any failure or cancellation closes it.

aiohttp's ClientSession did the same per call for about four times the CPU (issue 11,
docs/performance.md): its request/response objects, header multidicts, timers and
stream readers are more than these calls need.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import cast

import httptools
from yarl import URL

from service.upstreams import answers
from service.upstreams.answers import AnswerTooLarge
from service.upstreams.waits import Deadlines, Slots

#: aiohttp's defaults: connections per connector, seconds an idle one is kept
POOL_LIMIT = 100
KEEPALIVE_SECONDS = 15.0


class ConnectionFailed(ConnectionError):
    """The connection broke or the answer could not be parsed (no value in the message)."""


class Sent:
    """Set by the pool when the request bytes are handed to a connected transport."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class Reply:
    """A whole answer: status, ``Retry-After`` (raw) and the body."""

    __slots__ = ("body", "retry_after", "status")

    def __init__(self, status: int, retry_after: str | None, body: bytes) -> None:
        self.status = status
        self.retry_after = retry_after
        self.body = body


class _Connection(asyncio.Protocol):
    """One connection: feeds what arrives to its parser while a request is in flight.
    The parser is the connection's (llhttp reads one answer after another on a kept-alive
    connection); one per request cost ~0.4 us to build. A connection whose answer failed
    or was cut short is never reused, so no parser state outlives its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.alive = True  # false once the peer closed, a failure, or Connection: close
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Reply] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._status = 0
        self._retry_after: str | None = None
        self._framed = False  # Content-Length or chunked: the end is not the close
        self._headers_done = False
        self._failure: BaseException | None = None
        self._limit = 0

    # -- asyncio ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not an isinstance check: uvloop's transports are not asyncio.Transport's subclasses
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._waiter is None:
            self.abort()  # nothing asked for: an idle connection must stay silent
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionFailed("unexpected protocol upgrade"))
        except httptools.HttpParserError:
            self._fail(self._failure or ConnectionFailed("malformed answer"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self._waiter is None:  # no request in flight
            return
        if self._headers_done and not self._framed and self._failure is None:
            self.on_message_complete()  # an answer whose end is the close
            return
        self._fail(ConnectionFailed("connection closed before the whole answer"))

    # -- one request ------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Reply]:
        self._waiter = loop.create_future()
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self._chunks, self._size, self._status = [], 0, 0
        self._retry_after, self._framed, self._headers_done = None, False, False
        self._failure = None
        self._limit = answers.MAX_ANSWER_BYTES  # read per request: a test lowers it
        return self._waiter

    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second answer to one request
            raise ConnectionFailed("unexpected answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._framed = True
            try:
                too_large = int(value) > self._limit
            except ValueError:
                too_large = False  # the parser refuses it
            if too_large:
                assert self._parser is not None
                self._failure = AnswerTooLarge(self._parser.get_status_code())
                raise self._failure
        elif name == b"transfer-encoding":
            self._framed = True
        elif name == b"retry-after":
            self._retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()
        self._headers_done = True
        if self._status < 200 or self._status in (204, 304):
            self._framed = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._failure = AnswerTooLarge(self._status)
            raise self._failure
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        parser, waiter = self._parser, self._waiter
        assert parser is not None
        if not self._framed or not parser.should_keep_alive():
            self.alive = False
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(Reply(self._status, self._retry_after, b"".join(self._chunks)))
        if parser.should_upgrade():
            self.alive = False

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        self._waiter = None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one origin, for one connector."""

    def __init__(
        self,
        base_url: URL,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        total_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = POOL_LIMIT,
    ) -> None:
        host = base_url.raw_host
        assert host is not None
        self._host = host
        self._port = base_url.port or (443 if base_url.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if base_url.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        lines = [f"Host: {base_url.host_port_subcomponent}"]
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n\0") or not name:
                raise ValueError("a request header cannot be sent")  # no value named
            lines.append(f"{name}: {value}")
        self._head = ("\r\n".join(lines) + "\r\n").encode()  # as aiohttp: UTF-8
        self._content_types: dict[str, bytes] = {}
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._slots = Slots(limit)
        self._deadlines = Deadlines()
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None,
        content_type: str | None,
        sent: Sent,
    ) -> Reply:
        """One exchange; ``sent.sent`` is set once the request is handed to a connected
        transport. Raises ``TimeoutError``, ``OSError`` (:class:`ConnectionFailed`, refused
        connections ...) or ``AnswerTooLarge``."""
        # One %-format into bytes: ``str.encode("latin-1")`` looks its codec up by name on
        # every call, and each ``+`` copies what was built so far (~0.6 against ~0.2 us).
        line = f"{method} {target} HTTP/1.1\r\n".encode("latin_1")
        if body is None:
            head = b"%s%s\r\n" % (line, self._head)
        else:
            typed = b"" if content_type is None else self._content_type(content_type)
            head = b"%s%s%sContent-Length: %d\r\n\r\n%s" % (
                line, self._head, typed, len(body), body,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total_timeout
        conn = self._ready()
        if conn is None:  # a wait for a free slot or a new connection, within the deadline
            async with asyncio.timeout_at(deadline):
                conn = await self._connection()
        timer: asyncio.TimerHandle | None = None
        try:
            done = False
            try:
                waiter = conn.start(loop)
                timer = self._deadlines.add(loop, deadline, waiter)  # the answer in time too
                assert conn.transport is not None
                sent.sent = True
                conn.transport.write(head)
                reply = await waiter
                done = True
            finally:
                self._busy.discard(conn)
                self._release(conn, done)
        finally:
            if timer is not None:
                timer.cancel()
            self._slots.give()
        return reply

    def _content_type(self, content_type: str) -> bytes:
        """The ``Content-Type`` header line, built once per value."""
        line = self._content_types.get(content_type)
        if line is None:
            if any(c in content_type for c in "\r\n\0"):
                raise ValueError("a request header cannot be sent")  # no value named
            line = self._content_types[content_type] = f"Content-Type: {content_type}\r\n".encode(
                "latin_1"
            )
        return line

    def _ready(self) -> _Connection | None:
        """A free slot and an idle connection, taken without waiting; ``None`` when
        either is missing (the slot is not kept)."""
        if not self._idle or self._closed or not self._slots.take():
            return None
        conn = self._idle_connection()
        if conn is None:
            self._slots.give()
        return conn

    async def _connection(self) -> _Connection:
        """A slot (waited for within ``connect_timeout`` when all are taken), then a
        connection; the slot is given back when none can be had."""
        if not self._slots.take():  # all connections busy
            async with asyncio.timeout(self._connect_timeout):
                await self._slots.wait()
        try:
            return await self._acquire()
        except BaseException:
            self._slots.give()
            raise

    def _idle_connection(self) -> _Connection | None:
        """The newest idle connection still usable (taken), or ``None``."""
        idle = self._idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if (
                conn.alive
                and conn.transport is not None
                and not conn.transport.is_closing()
                and now - conn.idle_since <= KEEPALIVE_SECONDS
            ):
                self._busy.add(conn)
                return conn
            conn.close()  # the newest is taken first: an older one is older still
        return None

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise ConnectionFailed("pool closed")
        conn = self._idle_connection()
        if conn is not None:
            return conn
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None,
            )  # fmt: skip
        if self._closed:
            conn.close()
            raise ConnectionFailed("pool closed")
        self._busy.add(conn)
        return conn

    def _release(self, conn: _Connection, done: bool) -> None:
        if not done:  # failed, timed out or cancelled: the answer's rest must not be read
            conn.abort()
            return
        if not conn.alive or self._closed:
            conn.close()
            return
        now = time.monotonic()
        conn.idle_since = now
        idle = self._idle
        while idle and now - idle[0].idle_since > KEEPALIVE_SECONDS:
            idle.pop(0).close()
        idle.append(conn)

    async def close(self) -> None:
        self._closed = True
        self._deadlines.close()
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()
        self._busy.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run
