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

Each update is written to the file at once, so ``/metrics`` on any worker counts every
answer any worker gave before it. The value class (:func:`_file_values`) writes the
library's file format (its collector reads the files) with less work per update than the
library's own (``values.MultiProcessValue``), which asks the kernel for the process id at
every update (to notice a fork) and looks the series up in the file's index: here each
series keeps its offset in the file, and a fork is noticed by ``os.register_at_fork``.
Measured (``python -m bench.metric_values``, CPU time): an ``inc`` 1.23 → 0.70 µs, an
``observe`` 2.51 → 1.46 µs (0.46 and 0.98 in process memory); a keycom change makes 6
increments and about 4.5 observations, so the files cost it 3.6 µs more than memory
instead of 11.5 (docs/performance.md, "Two workers, the service side").

Without :func:`enable` (one process, ``--workers 1``, the demo, the tests' apps)
nothing changes: each app has its own registry.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, multiprocess, values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.registry import Collector

from service.background import running

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: how often each worker writes its function gauges to its files
SAMPLE_SECONDS: Final = 5.0


_PACK: Final = struct.Struct("dd").pack  # a value and its timestamp, as the library's


def enable(directory: str) -> None:
    """This process's metrics go to files in ``directory`` (call before creating any)."""
    os.environ[ENV] = directory
    values.ValueClass = _file_values(directory)


def _file_values(directory: str) -> Any:
    """The value class of every metric created from now on: each value lives in this
    process's file ``<kind>_<pid>.db`` in ``directory`` (the library's layout and names:
    ``MmapedDict``), written at every update. One lock for all (as the library's). After
    a fork, a child that updates a metric starts its own files with every value at 0 (as
    the library's; a child that does not, such as one that execs, writes no file)."""
    files: dict[str, MmapedDict] = {}
    created: list[Any] = []
    lock = threading.Lock()
    forked = [False]  # set in a child of a fork, until its first update

    def file_of(prefix: str) -> MmapedDict:
        found = files.get(prefix)
        if found is None:
            path = os.path.join(directory, f"{prefix}_{os.getpid()}.db")
            found = files[prefix] = MmapedDict(path)  # type: ignore[no-untyped-call]
        return found

    def reopen_all() -> None:
        """The first update in a child of a fork: its own files (the parent's maps stay
        open for the parent), every value read from them (0)."""
        forked[0] = False
        files.clear()
        for value in created:
            value.open()

    class FileValue:
        _multiprocess = True

        def __init__(self, typ: str, metric_name: str, name: str, labelnames: Any,
                     labelvalues: Any, help_text: str, multiprocess_mode: str = "",
                     **_kwargs: Any) -> None:  # fmt: skip
            self._prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
            self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            with lock:
                if forked[0]:
                    reopen_all()
                self.open()
                created.append(self)

        def open(self) -> None:
            """Find (or add) this series in the file; its value as the file holds it."""
            self._file = file_of(self._prefix)
            self._value, self._timestamp = self._file.read_value(self._key)  # type: ignore[no-untyped-call]
            self._pos: int = self._file._positions[self._key]

        def inc(self, amount: float) -> None:
            with lock:
                if forked[0]:
                    reopen_all()
                self._value += amount
                # the file's map is replaced when it grows: read it at each update
                self._file._m[self._pos : self._pos + 16] = _PACK(self._value, 0.0)

        def set(self, value: float, timestamp: float | None = None) -> None:
            with lock:
                if forked[0]:
                    reopen_all()
                self._value, self._timestamp = value, timestamp or 0.0
                self._file._m[self._pos : self._pos + 16] = _PACK(value, self._timestamp)

        def set_exemplar(self, _exemplar: Any) -> None:
            return  # the files carry no exemplars (nor do the library's)

        def get(self) -> float:
            with lock:
                if forked[0]:
                    reopen_all()
                return float(self._value)

        def get_exemplar(self) -> None:
            return None

    def after_fork() -> None:
        nonlocal lock
        lock = threading.Lock()  # another thread may have held it at the fork
        forked[0] = True

    os.register_at_fork(after_in_child=after_fork)
    return FileValue


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
