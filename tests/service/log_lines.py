"""The gateway's JSON log lines captured in a test: a handler on one logger, at DEBUG,
removed afterwards (the logger's level restored)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from service.logs import JsonFormatter


class JsonLines(logging.Handler):
    """A handler keeping each record's JSON text in ``lines``."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured(name: str) -> Iterator[list[str]]:
    """The JSON text of every line logged under ``name`` meanwhile, in order."""
    handler = JsonLines()
    logger = logging.getLogger(name)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
