"""One serving process of ``gdpr-gateway serve``: the app built and started on uvloop,
then the cyclic garbage collector set for serving (:func:`settle_gc`), then requests.

Both ``serve`` (one process) and each worker of ``serve --workers N`` (after the fork)
run :func:`serve_process`. The collector, as Python leaves it, scans every object
that survives two young collections again at each full collection: the policies,
the settings, the compiled rules, the routes and the imported modules, about 119,000
objects that live as long as the process. Measured in bench runs (docs/performance.md,
"Garbage collector"): one or two full collections per 20 s run, 79-131 ms each, each
stopping every request in flight. Once the app serves, those objects
are moved to the permanent generation (``gc.freeze``), which no collection scans, and
the young generation is collected less often (:data:`GC_THRESHOLD`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Final

import uvloop
from aiohttp import web

from service.app import create_app
from service.settings import Settings
from service.shutdown import run_server

#: ``gc.set_threshold`` once serving: the young generation is collected after this many
#: more allocations than deallocations (Python's default: 700), the older two as usual
GC_THRESHOLD: Final = (10_000, 10, 10)


def settle_gc() -> None:
    """Free what the start-up left as garbage, freeze what is left (every object alive
    now is the app's or a module's: no collection scans them again) and collect the young
    generation less often. Called once, when the process starts serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def serve_process(
    settings: Settings,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    on_started: Callable[[web.AppRunner], None] | None = None,
    worker: int | None = None,
) -> None:
    """Build the app, serve it until SIGTERM/SIGINT (``service.shutdown``), return once
    it has stopped. The collector is settled before ``on_started`` and before the first
    request (both run after the listening socket opens, before the loop reads it)."""

    def started(runner: web.AppRunner) -> None:
        settle_gc()
        if on_started is not None:
            on_started(runner)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        # uvloop: measured 18 % less CPU per change (docs/performance.md)
        runner.run(
            run_server(create_app(settings), settings, host=host, port=port,
                       reuse_port=reuse_port, on_started=started, worker=worker)
        )  # fmt: skip
