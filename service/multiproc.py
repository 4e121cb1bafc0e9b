"""Metrics shared by the workers of ``serve --workers N``: prometheus_client's
multiprocess mode.

The supervisor (``service.workers``) creates a directory; each worker, before it builds
its app, calls :func:`enable` with it: from then on every counter, histogram and gauge
the worker creates keeps its values in memory-mapped files there (one per worker), and
``GET /metrics`` on any worker (:func:`exposition_registry`) reads all the files, so a
counter is the sum over the workers. Gauges say how they combine in
``service.metrics`` (``multiprocess_mode``: a sum for the lock connections, the worst
for a breaker or the audit store, ...; the live modes drop a dead worker's values, which
the supervisor removes with :func:`mark_dead`).

What the files cannot carry: ``Info`` series (the policy versions in force) are this
worker's own (every worker reloads on the same SIGHUP and file change), and a gauge read
by a function at scrape time is written to its file by ``Metrics.sample`` before each
exposition and every :data:`SAMPLE_SECONDS` (:func:`sampler`), so another worker's value
is at most that old.

Without :func:`enable` (one process, ``--workers 1``, the demo, the tests' apps)
nothing changes: each app has its own registry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, multiprocess, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from service.background import running

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: how often each worker writes its function gauges to its files
SAMPLE_SECONDS: Final = 5.0


def enable(directory: str) -> None:
    """This process's metrics go to files in ``directory`` (call before creating any)."""
    os.environ[ENV] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def mark_dead(directory: str, pid: int) -> None:
    """A worker exited: its live gauges no longer count (counters keep its totals)."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class _InfoOnly(Collector):
    """The ``Info`` metrics of one registry (the multiprocess files have none)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            if family.type == "info":
                yield family


def exposition_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What ``/metrics`` reads: ``own`` in one process; with :func:`enable`, the totals
    of every worker's files and this worker's ``Info`` series."""
    if not enabled():
        return own
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ[ENV])  # type: ignore[no-untyped-call]
    registry.register(_InfoOnly(own))
    return registry


def sampler(
    sample: Callable[[], None],
) -> Callable[[Any], AsyncIterator[None]]:
    """A cleanup context that calls ``sample`` (``Metrics.sample``) every
    :data:`SAMPLE_SECONDS` while the app runs."""

    async def sampler_ctx(_app: Any) -> AsyncIterator[None]:
        async def forever() -> None:
            while True:
                sample()
                await asyncio.sleep(SAMPLE_SECONDS)

        async with running(forever(), "metrics-sampler"):
            yield

    return sampler_ctx
