"""One thread that runs calls in order for the event loop: the SQLite store's writer and
reader (:mod:`audit.store_sqlite`).

What ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` does, with less work
per call on the event loop's thread, which is every append's (issue 11): no
``concurrent.futures.Future`` (a lock and a condition each), no work item, no executor
locks or thread-count check, no second future chained to the first and its callbacks. A
call is queued on a ``queue.SimpleQueue`` with the asyncio future that gets its result;
the thread sets it through ``loop.call_soon_threadsafe`` - one wake-up of the loop per
call, as before.

As with the executor, a call whose future was cancelled before the thread took it is not
run, and one that has started runs to its end (its result then dropped). The thread is a
daemon: :meth:`Worker.stop` ends it (the store's ``close``); a process that exits without
closing the store does not wait for it (SQLite rolls back a transaction left open).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Worker:
    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)``; the future (of the running loop) gets its result or error
        (``RuntimeError`` once the worker is stopped: in the future too, so that a caller
        that hands it on - the store's one-trip appends - fails there, not here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._stopped:
            future.set_exception(RuntimeError("the worker is stopped"))
        else:
            self._calls.put((loop, future, fn, args))
        return future

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Run what is queued, then end the thread (and wait for it)."""
        if not self._stopped:
            self._stopped = True
            self._calls.put(None)
        self._thread.join()

    def _run(self) -> None:
        calls = self._calls
        while (call := calls.get()) is not None:
            _run_one(*call)


def _run_one(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    if future.cancelled():  # as the executor: a call cancelled before it ran is not run
        return
    try:
        result = fn(*args)
    except BaseException as exc:  # the caller gets it, as from an executor
        _answer(loop, _fail, future, exc)
    else:
        _answer(loop, _succeed, future, result)


def _answer(
    loop: asyncio.AbstractEventLoop,
    how: Callable[[asyncio.Future[Any], Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(how, future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)
