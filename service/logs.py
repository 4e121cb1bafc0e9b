"""Structured logs: one JSON object per line on stderr, carrying ids, codes and names only.

``log_event(logger, "event_name", request_id=..., system=..., code=...)`` is how the
gateway logs. Fields must be identifiers (request ids, audit ids, system names), codes
(problem codes, field codes, HTTP statuses), field NAMES (``fields="Email,Phone"``),
counts and durations - never a value of a customer record, a customer id, a token, a
user name or a free-text reason. As a safety net, a field whose name suggests such
content (``value``, ``customer_id``, ``email``, ``token``, ``reason``, ``body``, ...,
see :data:`FORBIDDEN_PARTS`) is written as ``"[redacted]"``, and so is any value that is
not a plain scalar or a list of scalars (a dict may be a whole record).

Records from other libraries are written with their message TEMPLATE only
(``record.msg``), never the interpolated arguments, which may carry data (aiohttp's
messages carry client addresses, for example). Exceptions are written as their type and
the stack of ``file:line in function`` frames - never the exception message.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson

from service.log_batch import LineBatch, flush_all

#: A field is redacted when its name, split at ``_``, contains one of these words (or
#: when the whole name is one of them). Field names, ids and codes pass.
FORBIDDEN_PARTS: Final = frozenset(
    {
        "value", "values", "old", "new", "before", "after", "body", "payload", "patch",
        "record", "customer", "subject", "email", "mail", "phone", "mobile", "fax",
        "address", "street", "city", "zip", "postal", "iban", "birth", "dob",
        "firstname", "lastname", "fullname", "password", "passwd", "token", "secret",
        "authorization", "credential", "credentials", "key", "query", "reason", "user",
        "username", "actor", "principal", "ip", "cookie", "header", "headers", "message",
        "text", "data",
    }
)  # fmt: skip
REDACTED: Final = "[redacted]"
MAX_STRING: Final = 200  # ids and codes are short; anything longer is cut
_CORE: Final = frozenset({"time", "level", "logger", "event"})
_FIELDS_ATTR: Final = "gdpr_fields"
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: what ``Logger.log`` records when it does not look for the caller
_NO_FILE: Final = "(unknown file)"
_NO_FUNCTION: Final = "(unknown function)"


@functools.lru_cache(maxsize=1024)
def is_forbidden(name: str) -> bool:
    """Whether a field of this name may carry personal data or secrets (field names are
    the code's own, few: the answer is kept per name)."""
    lowered = _CAMEL.sub("_", name).lower()  # CustomerId -> customer_id
    return lowered in FORBIDDEN_PARTS or any(
        p in FORBIDDEN_PARTS for p in re.split(r"[_\W]+", lowered)
    )


def scalar(value: object) -> object:
    """A value as a line shows it: a scalar (a long string cut), else redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "..."
    return REDACTED


def _clean(name: str, value: object) -> object:
    if is_forbidden(name):
        return REDACTED
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        return [scalar(v) for v in items]
    return scalar(value)


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: object
) -> None:
    """Log ``event`` with ``fields`` (ids, codes, field names, counts: see module doc)."""
    if not logger.isEnabledFor(level):
        return
    clean = {name: _clean(name, value) for name, value in fields.items()}
    emit(logger, level, event, clean)


def emit(
    logger: logging.Logger,
    level: int,
    event: str,
    clean: dict[str, object],
    *,
    batched: bool = False,
) -> None:
    """``logger.log(level, event)`` with fields already clean (as :func:`log_event`
    makes them), without what no line shows: the caller's file, line and function, which
    ``Logger.log`` finds by walking the stack for every record (issue 11).

    When the one place such a record would go is the handler :func:`configure_logging`
    installs (no other handler, no filter on the way), the line is written straight to
    it, without a ``LogRecord`` and logging's dispatch: the same line (issue 11); with
    ``batched`` (the access line) it may wait to be written with others
    (:mod:`service.log_batch`)."""
    handler = _sole_handler(logger, level)
    if handler is not None:
        handler.write(level, logger.name, event, clean, batched=batched)
        return
    logger.handle(_record(logger, level, event, clean))


def _record(
    logger: logging.Logger, level: int, event: str, clean: dict[str, object]
) -> logging.LogRecord:
    return logger.makeRecord(
        logger.name, level, _NO_FILE, 0, event, (), None, _NO_FUNCTION, {_FIELDS_ATTR: clean}
    )


def _sole_handler(logger: logging.Logger, level: int) -> _StderrHandler | None:
    """The :class:`_StderrHandler` (with its :class:`JsonFormatter`) when it is the only
    handler a record of ``logger`` at ``level`` would reach and no filter is on the way;
    else None (a test's capture, a handler added by anyone: logging's own way)."""
    if logger.disabled:
        return None
    found = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for handler in node.handlers:
            if found is not None or type(handler) is not _StderrHandler:
                return None
            found = handler
        if not node.propagate:
            break
        node = node.parent
    if (
        found is None
        or found.filters
        or level < found.level
        or type(found.formatter) is not JsonFormatter
    ):
        return None
    return found


class LogLimiter:
    """At most ``burst`` lines of one event per ``interval`` seconds; what is held back is
    counted and reported once, as ``log_lines_suppressed``, when the next window opens.

    For lines a client can cause at will (a malformed request costs it nothing): without
    a limit each would be a cheap way to flood the logs. One limiter per event name.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.burst, self.interval, self._clock = logger, burst, interval, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # event: (start, shown, held)

    def log(self, event: str, *, level: int = logging.WARNING, **fields: object) -> None:
        now = self._clock()
        start, shown, held = self._windows.get(event, (now, 0, 0))
        if now - start >= self.interval:
            if held:
                log_event(self.logger, "log_lines_suppressed", level=level,
                          suppressed_event=event, count=held, seconds=self.interval)
            start, shown, held = now, 0, 0
        if shown < self.burst:
            shown += 1
            log_event(self.logger, event, level=level, **fields)
        else:
            held += 1
        self._windows[event] = (start, shown, held)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, then the event's fields.

    Written with orjson (compact: no spaces after ``,`` and ``:``); what orjson refuses
    (an integer beyond 64 bits, a lone surrogate) with the standard library's ``json``.
    The time's date and second are formatted once per second."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def _time(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``."""
        second = int(created)
        micros = round((created - second) * 1e6)  # as datetime rounds, to the microsecond
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        return self.line(
            record.created,
            record.levelname,
            record.name,
            # The template only: arguments interpolated into it may carry data.
            record.msg if isinstance(record.msg, str) else type(record.msg).__name__,
            getattr(record, _FIELDS_ATTR, None),
            record,
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        event: str,
        fields: object,
        record: logging.LogRecord | None = None,
    ) -> str:
        """The line of an event with its clean ``fields`` (and the exception of
        ``record``, when it has one)."""
        out: dict[str, Any] = {
            "time": self._time(created),
            "level": level,
            "logger": logger,
            "event": event,
        }
        if isinstance(fields, dict):
            if _CORE.isdisjoint(fields):
                out.update(fields)
            else:
                for name, value in fields.items():
                    out[f"field_{name}" if name in _CORE else name] = value
        if record is not None and record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            out["exc_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
            out["stack"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(tb)
            ]
        try:
            return orjson.dumps(out, default=_redacted, option=_PASSTHROUGH).decode()
        except (TypeError, orjson.JSONEncodeError):
            return json.dumps(out, ensure_ascii=False, default=_redacted)


#: what json would not write either goes to ``default`` (and is redacted)
_PASSTHROUGH: Final = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _redacted(_value: object) -> str:
    return REDACTED


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the write (test capture too);
    batched lines wait in a :class:`~service.log_batch.LineBatch`."""

    def __init__(self) -> None:
        super().__init__()
        self._batch = LineBatch(self.flush)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass

    def write(
        self, level: int, logger: str, event: str, fields: dict[str, object],
        *, batched: bool = False,
    ) -> None:
        """What ``handle`` of the record of :func:`emit` writes (this handler's
        :class:`JsonFormatter` being its formatter: see :func:`_sole_handler`)."""
        formatter = self.formatter
        assert isinstance(formatter, JsonFormatter)
        created = time.time()
        with self.lock:  # type: ignore[union-attr]  # made in Handler.__init__
            try:
                line = formatter.line(created, logging.getLevelName(level), logger, event, fields)
                if not (batched and self._batch.hold(line + "\n")):
                    self._write_out(line + "\n")
            except RecursionError:
                raise
            except Exception:  # as logging does: reported on stderr, never raised
                record = logging.makeLogRecord(
                    {"name": logger, "levelno": level, "levelname": logging.getLevelName(level),
                     "msg": event, _FIELDS_ATTR: fields, "created": created}
                )  # fmt: skip
                self.handleError(record)

    def emit(self, record: logging.LogRecord) -> None:
        """A record through logging's own way: written after the lines waiting."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write_out(self.format(record) + "\n")
            except RecursionError:
                raise
            except Exception:
                self.handleError(record)

    def flush(self) -> None:
        """Write the lines waiting (the batch's timer, :func:`flush`, logging at exit)."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write_out("")
            except RecursionError:
                raise
            except Exception:  # stderr is gone: the lines with it
                self._batch.forget()

    def _write_out(self, text: str) -> None:
        """The lines waiting, then ``text``, in one write (the caller holds the lock)."""
        text = self._batch.take(text)
        if text:
            stream = sys.stderr
            stream.write(text)
            stream.flush()


def flush() -> None:
    """Write every access line still waiting (the end of serving; exit does it too)."""
    flush_all()


def configure_logging(level: str) -> None:
    """JSON lines on stderr for every logger, at ``level``; idempotent.

    aiohttp's own access logger is silenced: its lines carry raw paths with query strings
    and client addresses. The gateway's middleware writes the access line instead.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
            handler.flush()
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(numeric)
    # no line shows a record's thread or process names: not looked up per record
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
