"""``audit.failures.swallowed``: swallows the kinds it names (default: any Exception) with
one log line naming the failure's type, never its message, and lets everything else
through - a class, not a generator, since it runs per change around each lock release on
PostgreSQL (issue 11)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from audit.failures import swallowed

log = logging.getLogger("tests.audit.failures")


def test_the_named_kinds_are_swallowed_with_their_type_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, logger=log.name),
        swallowed(log, "the thing", KeyError, level=logging.INFO),
    ):
        raise KeyError("zq.secret@example.org")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "the thing failed (KeyError)")
    ]


def test_any_exception_by_default_and_nothing_when_nothing_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=log.name):
        with swallowed(log, "a hook"):
            raise ValueError("x")
        with swallowed(log, "a quiet hook"):
            pass
    assert [r.getMessage() for r in caplog.records] == ["a hook failed (ValueError)"]
    assert caplog.records[0].levelno == logging.WARNING


def test_other_kinds_and_cancellation_pass_through() -> None:
    with pytest.raises(ValueError), swallowed(log, "the thing", KeyError):
        raise ValueError("not a KeyError")
    with pytest.raises(asyncio.CancelledError), swallowed(log, "the thing"):
        raise asyncio.CancelledError  # a BaseException: never swallowed by default
