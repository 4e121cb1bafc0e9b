"""The HTTP server around the app, shared by ``serve`` and ``demo``: limits and edge answers.

``GatewayRunner(app, settings)`` is an ``AppRunner`` whose connections are
:class:`GatewayProtocol`s built with :func:`server_kwargs` - the one place where the
keep-alive timeout, the request-head limits and the lingering time are set. Both commands
run the app through it (``run`` below for ``serve``; ``demo`` starts it beside the
emulators), so the two cannot drift apart again (issue 8, item 15).

Why a protocol subclass: aiohttp answers a request it cannot parse - a header over the
limit, too many headers, a URL over the limit, a bad chunk size, an invalid method - from
``RequestHandler.handle_error`` before any application code runs, so no middleware sees
it. Its own answer is ``400 text/plain`` quoting the offending bytes, with ``Server:
Python/x aiohttp/y``, and each one logs an ERROR with a stack trace. ``handle_error`` is
the hook aiohttp offers for this (there is no application-level one); the runner's
``_make_server`` is the documented place where a runner builds its server.

What the protocol does instead: answer ``400 bad_request`` as problem+json with a fixed
detail (no request bytes), ``Server: gdpr-gateway``, a fresh ``X-Request-Id`` and
``Connection: close``; and log one WARNING line (the error's type, never its message,
which quotes the request) through a :class:`~service.logs.LogLimiter`, so a client that
sends garbage in a loop cannot flood the logs. Its ``finish_response`` answers the same
way aiohttp's own errors raised before the middlewares run (its ``Expect`` check, whose
417 quoted the header), which reach it as the exception itself.

The lingering close: an answer that closes the connection (``408``, a ``400`` for a body
or a request that could not be read, any answer while draining) often leaves before the
request's last bytes. Closing the socket then would make the kernel answer the bytes
still arriving (or still unread) with a reset, and a client that is still sending loses
the answer it had not read yet. So the protocol half-closes instead (a FIN after the
answer), and reads and drops what still comes until the client closes its end - at most
``LINGER_SECONDS`` and ``LINGER_MAX_BYTES`` - and then closes (as nginx's
``lingering_close`` does). aiohttp's own ``lingering_time`` covers only a connection it
keeps alive, and only the unread body.

What cannot be answered: a request head that never completes is closed without an answer
when the keep-alive timer fires (``keepalive_timeout_seconds`` after the connection
opened or after the previous answer); aiohttp has no hook to write there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, Final

from aiohttp import web

from common.vocabulary import Problem
from service.logs import LogLimiter
from service.middleware import REQUEST_ID_HEADER, SERVER_NAME, problem_response
from service.settings import Settings

#: how long a connection keeps reading (and dropping) what the client still sends after
#: an answer: aiohttp's own linger over an unread body (a connection kept alive), and the
#: lingering close after an answer that closes the connection (:class:`GatewayProtocol`).
#: Enough for bytes in flight, short for a client that stalls (aiohttp's default is 10 s)
LINGER_SECONDS: Final = 2.0
#: the most a lingering close drops before it closes at once (well above the body limit's
#: default: what a client sends before it sees the answer)
LINGER_MAX_BYTES: Final = 1 << 20
#: protocol errors: at most this many log lines per interval (then a count)
PROTOCOL_LOG_BURST: Final = 10
PROTOCOL_LOG_INTERVAL_SECONDS: Final = 60.0

_log = logging.getLogger("gdpr_gateway.http")


def server_kwargs(settings: Settings) -> dict[str, Any]:
    """aiohttp's per-connection settings, from the gateway's settings."""
    return {
        "keepalive_timeout": settings.keepalive_timeout_seconds,
        "max_line_size": settings.header_limit_bytes,  # the request line (method, URL)
        "max_field_size": settings.header_limit_bytes,  # one header, name and value
        "max_headers": settings.header_count_limit,
        "lingering_time": LINGER_SECONDS,
        "access_log": None,  # the request-context middleware writes one line per request
    }


def protocol_log() -> LogLimiter:
    """The limiter of the protocol's log lines (one per runner)."""
    return LogLimiter(_log, burst=PROTOCOL_LOG_BURST, interval=PROTOCOL_LOG_INTERVAL_SECONDS)


class GatewayProtocol(web.RequestHandler):
    """aiohttp's connection handler with the gateway's answer to what it cannot parse."""

    def __init__(self, manager: web.Server, *, limiter: LogLimiter, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limiter = limiter

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request aiohttp could not parse (400) or handle (500, 504).

        ``message`` quotes the request and ``exc`` carries the same text: neither is
        written anywhere."""
        self._warn(status, exc)
        if request.writer.output_size > 0:  # an answer is on its way: nothing to add
            raise ConnectionError("an answer was sent already")
        return _edge_problem(status)

    def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        """aiohttp writes the answer; when it closes the connection, a lingering close.

        An error aiohttp raised before the middlewares ran (its ``Expect`` check, whose
        417 quotes the header) reaches this as the exception itself: it is answered as a
        problem instead. An answer that keeps the connection alive is written by aiohttp's
        own coroutine, returned as it is: no frame of ours around it (issue 11)."""
        if isinstance(resp, web.HTTPException) and resp.status >= 400 and not resp.prepared:
            resp = _edge_problem(resp.status)
        if _kept_alive(request, resp):
            return super().finish_response(request, resp, start_time)
        return self._finish_and_linger(request, resp, start_time)

    async def _finish_and_linger(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        resp, reset = await super().finish_response(request, resp, start_time)
        if not reset and not resp.keep_alive:
            await self._lingering_close()
        return resp, reset

    async def _lingering_close(self) -> None:
        """A FIN after the answer, then what the client still sends is dropped until it
        closes its end, ``LINGER_SECONDS`` pass or ``LINGER_MAX_BYTES`` arrive; then the
        connection closes."""
        transport = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            return
        lingering = _Lingering(self, LINGER_MAX_BYTES)
        transport.set_protocol(lingering)  # aiohttp's parser sees nothing more
        transport.write_eof()  # once the answer is out
        if not transport.is_reading():  # aiohttp pauses it while a body is unread
            transport.resume_reading()
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                await lingering.ended
        except TimeoutError:
            pass
        finally:
            self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's other error lines (a body that broke while it was being drained)."""
        exc = kw.get("exc_info")
        self._warn(None, exc if isinstance(exc, BaseException) else None)

    def _warn(self, status: int | None, exc: BaseException | None) -> None:
        self._limiter.log(
            "http_protocol_error",
            status=status,
            error_type=type(exc).__name__ if exc is not None else None,
        )


class _Lingering(asyncio.Protocol):
    """A connection in its lingering close: what arrives is counted and dropped; its end
    (the client's FIN or reset, or the byte budget spent) ends the linger, and the loss
    of the connection goes on to aiohttp's handler, which lets it go."""

    def __init__(self, handler: web.RequestHandler, budget: int) -> None:
        self._handler = handler
        self._budget = budget
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._budget -= len(data)
        if self._budget < 0:
            self._end()

    def eof_received(self) -> None:
        """The client closed its end: the transport closes (nothing is left unread)."""
        self._end()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._end()
        self._handler.connection_lost(exc)

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


def _edge_problem(status: int) -> web.Response:
    """The answer to what never reached the middlewares: no request bytes, connection closed."""
    if 400 <= status < 500:
        response = problem_response(
            Problem.BAD_REQUEST, 400, "Bad request", "the HTTP request could not be read"
        )
    else:
        response = problem_response(
            Problem.INTERNAL_ERROR, 500, "Internal error", "an unexpected error occurred"
        )
    response.headers["Server"] = SERVER_NAME
    response.headers[REQUEST_ID_HEADER] = uuid.uuid4().hex
    response.force_close()
    return response


def _kept_alive(request: web.BaseRequest, resp: web.StreamResponse) -> bool:
    """Whether ``resp`` keeps the connection alive: what ``StreamResponse.keep_alive``
    is once prepared (``_prepare_headers`` sets it: the answer's own choice, else the
    request's), so that only an answer that closes goes the lingering way."""
    keep_alive = resp._keep_alive  # set by force_close(); None: the request decides
    return request.keep_alive if keep_alive is None else keep_alive


class _GatewayServer(web.Server):
    """aiohttp's low-level server, making :class:`GatewayProtocol` connections."""

    def __init__(self, *args: Any, limiter: LogLimiter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limiter = limiter

    def __call__(self) -> web.RequestHandler:
        return GatewayProtocol(self, loop=self._loop, limiter=self._limiter, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``AppRunner`` with :func:`server_kwargs` and :class:`GatewayProtocol` connections."""

    def __init__(
        self,
        app: web.Application,
        settings: Settings,
        *,
        limiter: LogLimiter | None = None,
        **runner_kwargs: Any,
    ) -> None:
        """``runner_kwargs`` go to ``web.AppRunner`` (``handle_signals``,
        ``shutdown_timeout``); the server's own come from :func:`server_kwargs`."""
        super().__init__(app, **runner_kwargs, **server_kwargs(settings))
        self._limiter = limiter if limiter is not None else protocol_log()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as AppRunner does
        return _GatewayServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            limiter=self._limiter,
            **plain._kwargs,  # the kwargs AppRunner gave its server (server_kwargs + app debug)
        )


async def start(runner: GatewayRunner, host: str, port: int) -> None:
    """Set up ``runner`` and listen on ``host:port``."""
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
