"""Serving until a signal, then stopping without losing a change: drain, finish, flush.

``run_server`` is what ``gdpr-gateway serve`` and ``gdpr-gateway demo`` run instead of
``web.run_app``. aiohttp's own shutdown (``AppRunner.cleanup``) stops listening first
and then waits for handlers; behind a Kubernetes Service that is too early: endpoints
are removed asynchronously, and for a few seconds after SIGTERM clients and kube-proxy
still send new connections to the pod. So, on SIGTERM or SIGINT:

1. **drain** (``shutdown.drain_seconds``): ``/readyz`` answers 503 at once, and every
   answer carries ``Connection: close`` so keep-alive clients move to another replica;
   new connections are still accepted and served as usual;
2. **stop accepting**: the listening socket is closed and idle keep-alive connections
   are closed;
3. **finish** (``shutdown.grace_seconds``): requests under way are awaited;
4. **clean up**: ``AppRunner.cleanup`` cancels whatever still runs after the grace (a
   change already forwarded is not abandoned: the gateway keeps its customer locked and
   waits for the upstream's answer and the audit outcome; see ``Gateway.writes``), then
   the application's cleanup contexts close in reverse order: the gateway waits for its
   changes, the audit log commits what is queued and signs a final checkpoint, the
   upstream sessions close. The process then exits 0.

A second SIGTERM/SIGINT cuts the drain short (not the grace). SIGHUP reloads the
policies (:mod:`service.reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from service.inflight import InFlight
from service.keys import LIFECYCLE_KEY, POLICIES_KEY
from service.logs import flush as flush_logs
from service.logs import log_event
from service.server import GatewayRunner
from service.settings import Settings

log = logging.getLogger("gdpr_gateway.shutdown")

#: after the grace, how long aiohttp gives a cancelled handler before dropping it
CANCEL_SECONDS = 0.25


class Lifecycle:
    """Whether this process is draining, and the HTTP requests it is answering."""

    def __init__(self) -> None:
        self.draining = False
        self.requests = InFlight()


async def run_server(
    app: web.Application,
    settings: Settings,
    *,
    host: str,
    port: int,
    drain_seconds: float | None = None,
    stop: asyncio.Event | None = None,
    on_started: Callable[[web.AppRunner], None] | None = None,
    reuse_port: bool = False,
    worker: int | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (or ``stop`` is set), then shut down as above.

    The server is :class:`service.server.GatewayRunner` (keep-alive, head limits, edge
    answers from ``settings``); ``drain_seconds`` overrides ``shutdown.drain_seconds``
    (the demo drains 0 s by default). ``reuse_port`` and ``worker``: one of the workers
    of ``serve --workers N`` (service/workers.py), listening with ``SO_REUSEPORT``."""
    drain = settings.shutdown_drain_seconds if drain_seconds is None else drain_seconds
    stop = stop if stop is not None else asyncio.Event()
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    def on_stop(name: str) -> None:
        if stop.is_set():
            hurry.set()
        log_event(log, "shutdown_signal", signal=name, draining=True)
        stop.set()

    def on_hup() -> None:
        task = asyncio.ensure_future(_reload(app))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    runner = GatewayRunner(
        app, settings, handle_signals=False, shutdown_timeout=CANCEL_SECONDS
    )
    handled: list[signal.Signals] = []
    try:
        await runner.setup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig.name)
            handled.append(sig)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        handled.append(signal.SIGHUP)
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        log_event(log, "serving", host=host, port=_bound_port(runner, port), worker=worker)
        if on_started is not None:
            on_started(runner)
        await stop.wait()
        await _drain(app, runner, drain, settings.shutdown_grace_seconds, hurry)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        for task in list(reloads):
            task.cancel()
        log_event(log, "shutdown_complete")
        flush_logs()  # the access lines still waiting (service/log_batch.py)


async def _drain(
    app: web.Application,
    runner: web.AppRunner,
    drain_seconds: float,
    grace_seconds: float,
    hurry: asyncio.Event,
) -> None:
    lifecycle = app[LIFECYCLE_KEY]
    lifecycle.draining = True
    log_event(log, "shutdown_draining", drain_seconds=drain_seconds,
              grace_seconds=grace_seconds, in_flight=lifecycle.requests.count)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(drain_seconds):
            await hurry.wait()
    for site in list(runner.sites):
        await site.stop()
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close now
    log_event(log, "shutdown_stopped_accepting", in_flight=lifecycle.requests.count)
    try:
        async with asyncio.timeout(grace_seconds):
            await lifecycle.requests.wait_idle()
    except TimeoutError:
        log_event(log, "shutdown_grace_expired", level=logging.WARNING,
                  in_flight=lifecycle.requests.count)


async def _reload(app: web.Application) -> None:
    if POLICIES_KEY in app:
        await app[POLICIES_KEY].reload("signal")


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
