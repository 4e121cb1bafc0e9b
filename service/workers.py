"""``serve --workers N``: one supervisor process and N worker processes on one port.

Each worker is a fork of the supervisor running the whole app (``create_app`` +
``run_server``) on its own event loop; each binds the listening address itself with
``SO_REUSEPORT``, so the kernel spreads new connections over the workers (by a hash of
the connection's addresses) and a worker that dies takes only its own connections with
it. The supervisor binds the address first (without listening: it receives no
connection) to reserve the port for as long as it runs, and to learn the port when 0
was asked.

The supervisor does no HTTP. It

* forwards SIGTERM/SIGINT to every worker (each drains as a single process does:
  ``service.shutdown``; a second signal cuts the drains short) and exits 0 once every
  worker has exited 0 (or was ended by that signal before it served), 1 otherwise;
* forwards SIGHUP (reload the policies) to every worker;
* restarts a worker that died, after a backoff that doubles while restarts keep failing
  (0.5 s up to 30 s), logging ``worker_exited`` and ``worker_restarting``. A worker that
  fails before it is serving, at the first start or :data:`MAX_START_FAILURES` times in a
  row later, stops everything: the supervisor exits 2 (the worker said why on stderr,
  as a single process would have);
* holds the directory of the metrics the workers share (``service.multiproc``): created
  at start, the files of a dead worker's gauges removed, the whole directory at exit.

Forking, not spawning: the workers share the supervisor's imported modules (copy on
write), and the supervisor starts no thread and no event loop before it forks.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import ForkProcess
from typing import Any, Final

from common.cpus import usable_cpus
from service import multiproc
from service.logs import log_event
from service.settings import Settings

log = logging.getLogger("gdpr_gateway.workers")

#: restarts of a worker that keeps dying: 0.5 s, doubling, at most 30 s
BACKOFF_FIRST_SECONDS: Final = 0.5
BACKOFF_MAX_SECONDS: Final = 30.0
#: a worker that served this long before it died restarts without backoff
STABLE_SECONDS: Final = 10.0
#: this many workers in a row that die before serving: the supervisor gives up (exit 2)
MAX_START_FAILURES: Final = 5
_TICK_SECONDS: Final = 0.2
_PR_SET_PDEATHSIG: Final = 1


def resolve_workers(settings: Settings, asked: int | None) -> int:
    """How many workers to run: ``--workers``, else the ``workers`` setting; 0 means the
    usable CPUs on PostgreSQL and 1 on SQLite (the single-node store)."""
    count = settings.workers if asked is None else asked
    if count > 0:
        return count
    return usable_cpus() if settings.audit_url.startswith("postgresql") else 1


def reserve(host: str, port: int) -> socket.socket:
    """A bound, not listening ``SO_REUSEPORT`` socket holding ``host:port`` (the port
    chosen by the kernel when 0) for the supervisor's lifetime."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class _Worker:
    index: int
    process: ForkProcess
    started: float = field(default_factory=time.monotonic)
    serving: bool = False


class Supervisor:
    """Runs ``count`` workers until a signal; :meth:`run` returns the exit status."""

    def __init__(self, settings: Settings, host: str, port: int, count: int) -> None:
        self._settings, self._host, self._count = settings, host, count
        self._ctx = multiprocessing.get_context("fork")
        self._ready = self._ctx.SimpleQueue()
        self._port = port
        self._workers: dict[int, _Worker] = {}
        self._restart_at: dict[int, float] = {}
        self._failures = 0  # workers in a row that died before serving
        self._stopping = 0  # stop signals received
        self._hup = False
        self._ever_served = False
        #: started once the first worker serves (a start that fails fails once)
        self._waiting: list[int] = []
        self._metrics_dir = ""
        self._reader: Any = self._ready._reader  # type: ignore[attr-defined]

    def run(self) -> int:
        sock = reserve(self._host, self._port)
        self._port = int(sock.getsockname()[1])
        self._metrics_dir = tempfile.mkdtemp(prefix="gdpr-gateway-metrics-")
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            log_event(log, "supervisor_started", workers=self._count, port=self._port)
            if not self._settings.audit_url.startswith("postgresql"):
                # correct, but the workers queue for SQLite's one write lock (measured:
                # no faster than one worker, a much longer tail; docs/operations.md)
                log_event(log, "workers_share_sqlite", level=logging.WARNING,
                          workers=self._count)  # fmt: skip
            # One worker first, the others once it serves: a start that cannot succeed
            # (no schema, a database that refuses, a wrong key) fails in one process,
            # with one line that names the fix, not once per worker.
            # the imported modules are frozen before the workers fork: a worker's
            # collections then never write to their pages, which stay shared (PSS)
            gc.freeze()
            self._start(0)
            self._waiting = list(range(1, self._count))
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self._stopping += 1

    def _loop(self) -> int:
        forwarded_stops = 0
        status = 0
        while self._workers or (not self._stopping and self._restart_at):
            if self._stopping > forwarded_stops:
                forwarded_stops = self._stopping
                log_event(log, "supervisor_stopping", workers=len(self._workers))
                self._restart_at.clear()
                self._signal_all(signal.SIGTERM)
            if self._hup:
                self._hup = False
                self._signal_all(signal.SIGHUP)
            sentinels = [w.process.sentinel for w in self._workers.values()]
            ready = wait([*sentinels, self._reader], timeout=_TICK_SECONDS)
            self._read_ready(ready)
            for worker in [w for w in self._workers.values() if w.process.sentinel in ready]:
                status = max(status, self._reap(worker))
            now = time.monotonic()
            for index, when in list(self._restart_at.items()):
                if when <= now and not self._stopping:
                    del self._restart_at[index]
                    self._start(index)
        log_event(log, "supervisor_stopped", status=status)
        return status

    def _read_ready(self, ready: list[Any]) -> None:
        if self._reader not in ready:
            return
        while not self._ready.empty():
            index, pid = self._ready.get()
            worker = self._workers.get(index)
            if worker is not None and worker.process.pid == pid:
                worker.serving = True
                self._ever_served = True
                self._failures = 0
        if self._ever_served and not self._stopping:
            for index in self._waiting:
                self._start(index)
            self._waiting = []

    def _reap(self, worker: _Worker) -> int:
        """A worker exited: forget it and restart it unless stopping. Its share of the
        exit status: 0, 1 (it failed while stopping) or 2 (workers keep failing)."""
        worker.process.join()
        del self._workers[worker.index]
        pid, code = worker.process.pid, worker.process.exitcode
        if pid is not None:
            multiproc.mark_dead(self._metrics_dir, pid)
        if self._stopping:
            log_event(log, "worker_stopped", worker=worker.index, pid=pid, exit_code=code)
            # a worker stopped before it served had nothing to drain: the SIGTERM passed
            # on can end it before its loop's handlers are in place (SIG_DFL until then)
            stopped_early = code == -signal.SIGTERM and not worker.serving
            return 0 if code == 0 or stopped_early else 1
        log_event(log, "worker_exited", level=logging.WARNING, worker=worker.index,
                  pid=pid, exit_code=code, served=worker.serving)  # fmt: skip
        if not worker.serving:
            self._failures += 1
            if not self._ever_served or self._failures >= MAX_START_FAILURES:
                log_event(log, "supervisor_giving_up", level=logging.ERROR,
                          failures=self._failures)  # fmt: skip
                self._stopping += 1
                self._restart_at.clear()
                return 2
        delay = 0.0
        if not worker.serving or time.monotonic() - worker.started < STABLE_SECONDS:
            exponent = max(0, self._failures - 1)
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2**exponent)
        self._restart_at[worker.index] = time.monotonic() + delay
        log_event(log, "worker_restarting", worker=worker.index, delay_seconds=delay)
        return 0

    def _signal_all(self, sig: signal.Signals) -> None:
        for worker in self._workers.values():
            if worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, sig)

    def _start(self, index: int) -> None:
        process = self._ctx.Process(
            target=_worker_main,
            args=(self._settings, self._host, self._port, index, self._metrics_dir, self._ready),
            name=f"gdpr-gateway-worker-{index}",
            daemon=False,
        )
        process.start()
        self._workers[index] = _Worker(index, process)


def _worker_main(
    settings: Settings, host: str, port: int, index: int, metrics_dir: str, ready: Any
) -> None:
    """One worker: the app on its own loop, listening with SO_REUSEPORT."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # run_server installs the loop's own handlers
    _die_with_parent()
    multiproc.enable(metrics_dir)
    # imported here: the app is built in the worker, after the metrics mode is set
    from service.failures import reported
    from service.serving import serve_process

    def started(_runner: object) -> None:
        ready.put((index, os.getpid()))

    try:
        serve_process(settings, host, port, reuse_port=True, on_started=started, worker=index)
    except Exception as exc:
        if not reported(exc, _NO_ARGS):
            raise
        sys.exit(2)


class _NoArgs:
    config = None
    state_dir = None


_NO_ARGS: Any = _NoArgs()


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM if the supervisor dies (killed, not stopped)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
