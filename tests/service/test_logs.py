from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.logs import (
    FORBIDDEN_PARTS,
    REDACTED,
    JsonFormatter,
    configure_logging,
    is_forbidden,
    log_event,
)
from tests.service.log_lines import JsonLines

PERSONAL = "jane.doe@example.com-XYZZY"


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    access_level = logging.getLogger("aiohttp.access").level
    yield
    for handler in list(root.handlers):
        if handler not in before_handlers:
            root.removeHandler(handler)
    root.setLevel(before_level)
    logging.getLogger("aiohttp.access").setLevel(access_level)


def lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_log_event_writes_one_json_object_per_line(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info")
    logger = logging.getLogger("gdpr_gateway.test")
    log_event(logger, "patch_forwarded", request_id="r-1", system="billbee", status=200,
              duration_ms=1.5, fields=["Email", "Phone"], dry_run=False)
    log_event(logger, "debug_only", level=logging.DEBUG, request_id="r-2")
    (line,) = lines(capsys.readouterr().err)
    assert line["event"] == "patch_forwarded"
    assert line["level"] == "INFO"
    assert line["logger"] == "gdpr_gateway.test"
    assert line["time"].endswith("+00:00")
    assert (line["request_id"], line["system"], line["status"]) == ("r-1", "billbee", 200)
    assert line["fields"] == ["Email", "Phone"]
    assert line["dry_run"] is False


@pytest.mark.parametrize(
    "name",
    ["value", "new_value", "customer_id", "email", "phone_number", "token", "authorization",
     "reason", "body", "username", "actor", "patch", "query", "master_key", "CustomerId",
     "customer-id"],
)
def test_forbidden_fields_are_redacted(
    configured: None, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    configure_logging("DEBUG")
    log_event(logging.getLogger("gdpr_gateway.test"), "event", **{name: PERSONAL})
    (line,) = lines(capsys.readouterr().err)
    redacted = line.get(name) == REDACTED and "XYZZY" not in json.dumps(line)
    assert redacted, f"field {name} was not redacted"


def test_structured_values_are_redacted_whatever_the_name(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    log_event(logging.getLogger("x"), "event", info={"Email": PERSONAL},
              things=[{"a": PERSONAL}, "ok"], obj=object())
    (line,) = lines(capsys.readouterr().err)
    assert line["info"] == REDACTED
    assert line["things"] == [REDACTED, "ok"]
    assert line["obj"] == REDACTED


def test_allowed_names_pass() -> None:
    for name in ("request_id", "audit_id", "system", "code", "problem_code", "field",
                 "fields", "status", "route", "method", "duration_ms", "count", "error_type"):
        assert not is_forbidden(name), name


def test_foreign_records_keep_their_template_not_their_arguments(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    logging.getLogger("somelib").warning("client %s sent %r", "10.1.2.3", PERSONAL)
    (line,) = lines(capsys.readouterr().err)
    assert line["event"] == "client %s sent %r"
    assert line["level"] == "WARNING"
    assert "XYZZY" not in json.dumps(line) and "10.1.2.3" not in json.dumps(line)


def test_exceptions_logged_by_type_and_frames_only(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    try:
        raise KeyError(PERSONAL)
    except KeyError:
        logging.getLogger("gdpr_gateway.test").exception("lookup failed")
    (line,) = lines(capsys.readouterr().err)
    assert line["exc_type"] == "builtins.KeyError"
    assert any("test_logs.py" in frame for frame in line["stack"])
    assert "XYZZY" not in json.dumps(line)


def test_core_keys_cannot_be_overwritten(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    log_event(logging.getLogger("gdpr_gateway.test"), "real", time="fake")
    (line,) = lines(capsys.readouterr().err)
    assert line["event"] == "real" and line["field_time"] == "fake"
    assert line["time"] != "fake"


def test_configure_is_idempotent_and_silences_aiohttp_access(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    log_event(logging.getLogger("gdpr_gateway.test"), "once")
    logging.getLogger("aiohttp.access").info('1.2.3.4 "GET /x?email=%s"', PERSONAL)
    assert len(lines(capsys.readouterr().err)) == 1


def test_unknown_level_is_a_clear_error(configured: None) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("chatty")


def test_long_strings_are_cut(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    log_event(logging.getLogger("x"), "event", request_id="r" * 1000)
    (line,) = lines(capsys.readouterr().err)
    assert len(line["request_id"]) < 300


_IDENT = st.from_regex(r"[a-z]{1,8}", fullmatch=True)


@given(
    prefix=_IDENT,
    part=st.sampled_from(sorted(FORBIDDEN_PARTS)),
    suffix=st.one_of(st.just(""), _IDENT.map(lambda s: "_" + s)),
    value=st.one_of(st.text(min_size=1), st.integers(), st.lists(st.text())),
)
def test_no_value_under_a_forbidden_name_is_ever_written(
    prefix: str, part: str, suffix: str, value: object
) -> None:
    name = f"{prefix}_{part}{suffix}"
    handler = JsonLines()
    logger = logging.getLogger("gdpr_gateway.property")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        log_event(logger, "event", **{name: value})
    finally:
        logger.removeHandler(handler)
    (line,) = handler.lines
    redacted = json.loads(line)[name] == REDACTED
    assert redacted, f"field {name} was written"


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_the_line_time_is_the_isoformat_of_the_record_time(created: float) -> None:
    """The formatter caches the date and second (issue 11): the text stays what
    ``datetime.isoformat(timespec="milliseconds")`` writes, at every second's edge too."""
    from datetime import UTC, datetime

    formatter = JsonFormatter()
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert formatter._time(created) == expected
    assert formatter._time(created) == expected  # the second's prefix, from the cache


def test_a_line_orjson_cannot_write_is_written_by_json(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    log_event(logging.getLogger("gdpr_gateway.test"), "odd", count=2**70)  # beyond 64 bits
    (line,) = lines(capsys.readouterr().err)
    assert line["count"] == 2**70



@contextlib.contextmanager
def alone() -> Iterator[logging.Handler]:
    """The handler of ``configure_logging`` as the root's only one (pytest's own capture
    handlers, added for each phase of a test, set aside meanwhile)."""
    root = logging.getLogger()
    before = root.handlers
    (ours,) = [h for h in before if isinstance(h.formatter, JsonFormatter)]
    root.handlers = [ours]
    try:
        yield ours
    finally:
        root.handlers = before


def _without_time(line: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in line.items() if name != "time"}


def test_a_line_written_directly_is_the_line_logging_writes(
    configured: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the configured handler, ``emit`` writes its line without a LogRecord
    (issue 11); with another handler on the way, logging's own path. Same line."""
    configure_logging("INFO")
    logger = logging.getLogger("gdpr_gateway.test_direct")
    fields = {"request_id": "r-1", "status": 200, "time": "kept apart", "codes": ["a", "b"]}
    with alone(), monkeypatch.context() as patched:
        patched.setattr(logging.Logger, "handle", None)  # not called: written directly
        log_event(logger, "direct", **fields)
    (direct,) = lines(capsys.readouterr().err)
    other = JsonLines()
    logger.addHandler(other)
    try:
        with alone():
            log_event(logger, "direct", **fields)
    finally:
        logger.removeHandler(other)
    (through_logging,) = lines(capsys.readouterr().err)
    assert _without_time(direct) == _without_time(through_logging)
    assert _without_time(direct) == {
        "level": "INFO", "logger": "gdpr_gateway.test_direct", "event": "direct",
        "request_id": "r-1", "status": 200, "field_time": "kept apart", "codes": ["a", "b"],
    }  # fmt: skip
    assert [json.loads(line)["event"] for line in other.lines] == ["direct"]


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@pytest.mark.parametrize("where", ["logger", "handler"])
def test_a_filter_on_the_way_still_drops_the_line(
    where: str, configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    logger = logging.getLogger("gdpr_gateway.test_filtered")
    with alone() as handler:
        target: logging.Filterer = logger if where == "logger" else handler
        drop = _DropAll()
        target.addFilter(drop)
        try:
            log_event(logger, "dropped", request_id="r-1")
        finally:
            target.removeFilter(drop)
        log_event(logger, "kept", request_id="r-1")
    assert [line["event"] for line in lines(capsys.readouterr().err)] == ["kept"]


def test_a_disabled_logger_or_a_higher_handler_level_writes_nothing(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    logger = logging.getLogger("gdpr_gateway.test_disabled")
    with alone() as handler:
        logger.disabled = True
        try:
            log_event(logger, "disabled", request_id="r-1")
        finally:
            logger.disabled = False
        handler.setLevel(logging.ERROR)
        try:
            log_event(logger, "below_the_handler", request_id="r-1")
            log_event(logger, "at_the_handler", level=logging.ERROR, request_id="r-1")
        finally:
            handler.setLevel(logging.NOTSET)
    assert [line["event"] for line in lines(capsys.readouterr().err)] == ["at_the_handler"]
