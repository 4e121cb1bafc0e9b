"""validate(): every field error at once, with the API's codes, never the value."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import FieldError, PolicyEngine

SECRET = "Zyx-9-Secret@example.org"  # a value that must never show up in a message


def _codes(errors: list[FieldError]) -> dict[str, str]:
    return {e.path: e.code for e in errors}


BLANK = ["", " ", "   ", "\u00a0", "\u3000 \u2003"]  # white space of any kind is blank
BLANK_OR_NULL = [
    *((system, {name: value}, name, "pattern_mismatch")
      for system, name in (("timelog", "Name"), ("sedona", "CustomerName"),
                           ("sedona", "TypeCode"), ("sedona", "TermCode"), ("keycom", "name"))
      for value in BLANK),
    ("timelog", {"Name": None}, "Name", "required"),
    ("keycom", {"name": None}, "name", "required"),
]
#: KeyCom's lengths as docs/upstreams.md gives them
KEYCOM_LENGTHS = [("country", 64), ("identification", 64), ("invoicing_country", 64),
                  ("number", 32), ("personal_id", 32), ("name", 255), ("name_extension", 255),
                  ("invoice_name", 255), ("note", 4000)]


@pytest.mark.parametrize(
    ("system", "patch", "path", "code"),
    [
        ("sedona", {"Nope": 1}, "Nope", "unknown_field"),
        ("sedona", {"CustomerBillPrimary": {"Nope": 1}}, "CustomerBillPrimary.Nope",
         "unknown_field"),
        ("sedona", {"BalanceDue": 1.0}, "BalanceDue", "read_only"),
        ("billbee", {"ArchivedAt": None}, "ArchivedAt", "read_only"),
        ("billbee", {"DefaultMailAddress": {"TypeName": "x"}}, "DefaultMailAddress.TypeName",
         "read_only"),
        ("timelog", {"CustomerID": 3001}, "CustomerID", "read_only"),
        ("sedona", {"CustomerName": 5}, "CustomerName", "wrong_type"),
        ("billbee", {"Number": True}, "Number", "wrong_type"),
        ("billbee", {"Number": 1.5}, "Number", "wrong_type"),
        ("billbee", {"DefaultPhone1": "x"}, "DefaultPhone1", "wrong_type"),
        ("billbee", {"MetaData": {"Value": "x"}}, "MetaData", "wrong_type"),
        ("keycom", {"sms_disabled": 1}, "sms_disabled", "wrong_type"),
        ("keycom", {"cooperative_sum": "12"}, "cooperative_sum", "wrong_type"),
        ("keycom", {"cooperative_sum": float("nan")}, "cooperative_sum", "wrong_type"),
        ("keycom", {"cooperative_date": 20240101}, "cooperative_date", "wrong_type"),
        ("sedona", {"CustomerName": "x" * 61}, "CustomerName", "too_long"),
        ("keycom", {"sms_numbers": ["+358401", "+358402", "+358403"]}, "sms_numbers", "too_long"),
        ("sedona", {"StatusCode": "OPEN"}, "StatusCode", "not_in_enum"),
        ("billbee", {"Type": 2}, "Type", "not_in_enum"),
        ("keycom", {"email": "not-an-email"}, "email", "invalid_format"),
        ("keycom", {"phone": "call me"}, "phone", "invalid_format"),
        ("keycom", {"sms_numbers": ["+358 40 1", "nope"]}, "sms_numbers[1]", "invalid_format"),
        ("keycom", {"cooperative_date": "01.02.2024"}, "cooperative_date", "invalid_format"),
        ("sedona", {"CustomerBillPrimary": {"CountryAbbrev": "usa"}},
         "CustomerBillPrimary.CountryAbbrev", "invalid_format"),
        ("timelog", {"CustomerSince": "yesterday"}, "CustomerSince", "invalid_format"),
        ("sedona", {"CustomerName": None}, "CustomerName", "required"),
        ("sedona", {"TermCode": None}, "TermCode", "required"),
        ("billbee", {"MetaData": [{"Value": "a"}, {"Value": 7}]}, "MetaData[1].Value",
         "wrong_type"),
        ("billbee", {"MetaData": [None]}, "MetaData[0]", "wrong_type"),
        # beyond ±(2^53-1) an integer is not interoperable JSON (RFC 7493): an upstream
        # would refuse it or read another number
        ("billbee", {"LanguageId": 2**53}, "LanguageId", "wrong_type"),
        ("billbee", {"LanguageId": -(10**38)}, "LanguageId", "wrong_type"),
        # what the upstream refuses, refused here first (tests/fuzz finding F1)
        *BLANK_OR_NULL,
        ("sedona", {"GroupCode": "XYZ"}, "GroupCode", "not_in_enum"),
        ("sedona", {"Group2Code": "res"}, "Group2Code", "not_in_enum"),
        *(("keycom", {name: None}, name, "required")
          for name in ("cooperative_member", "editable_by_customer", "sms_disabled",
                       "restricted_type_id", "sms_numbers")),
        ("keycom", {"sms_numbers": ["+358 40 1", ""]}, "sms_numbers[1]", "too_short"),
        *(("keycom", {name: "x" * (n + 1)}, name, "too_long") for name, n in KEYCOM_LENGTHS),
        # a phone format allows a leading + before 32 characters; KeyCom stores 32 in all
        *(("keycom", {name: "+" + "1" * 32}, name, "too_long") for name in ("phone", "phone2")),
        ("keycom", {"sms_numbers": ["+" + "1" * 32]}, "sms_numbers[0]", "too_long"),
    ],
)
def test_field_codes(
    engine: PolicyEngine, system: str, patch: dict[str, Any], path: str, code: str
) -> None:
    assert _codes(engine.validate(system, patch)) == {path: code}


def test_pattern_mismatch_and_too_short(tmp_path: Any) -> None:
    from policies import load_policy_set

    (tmp_path / "x.yaml").write_text(
        "system: x\nmode: patch\nid_field: id\n"
        "masking: {editor: {public: clear, internal: clear, personal: partial, "
        "restricted: redact}}\n"
        "fields:\n  id: {type: integer, read_only: true, category: user.unique_id, "
        "sensitivity: internal}\n"
        "  code: {type: string, pattern: '[A-Z]{3}', min_length: 3, category: "
        "system.operations, sensitivity: internal}\n"
        "  tags: {type: array, min_items: 1, category: system.operations, sensitivity: internal,"
        " items: {type: string, category: system.operations, sensitivity: internal}}\n",
        encoding="utf-8",
    )
    engine = PolicyEngine(load_policy_set([tmp_path]), pseudonym_key=b"k" * 32, hash_salt=b"s")
    assert _codes(engine.validate("x", {"code": "abc"})) == {"code": "pattern_mismatch"}
    assert _codes(engine.validate("x", {"code": "AB"})) == {"code": "too_short"}
    assert _codes(engine.validate("x", {"tags": []})) == {"tags": "too_short"}
    assert engine.validate("x", {"code": "ABC", "tags": ["a"]}) == []


def test_all_errors_at_once(engine: PolicyEngine) -> None:
    errors = engine.validate(
        "sedona",
        {"CustomerName": None, "TypeCode": "x" * 26, "Nope": 1, "BalanceDue": 2,
         "CustomerBillPrimary": {"Email": "x"}},
    )
    assert _codes(errors) == {
        "CustomerName": "required", "TypeCode": "too_long", "Nope": "unknown_field",
        "BalanceDue": "read_only", "CustomerBillPrimary.Email": "invalid_format",
    }


def test_values_at_the_upstreams_limits_pass(engine: PolicyEngine) -> None:
    assert engine.validate("keycom", {
        **{name: "x" * n for name, n in KEYCOM_LENGTHS}, "name": " x ",
        "phone": "+" + "1" * 31, "sms_numbers": ["1" * 32, "+358 40 1"],
        "cooperative_member": False, "restricted_type_id": 1,
    }) == []
    assert engine.validate("timelog", {"Name": "\u00a0N"}) == []
    assert engine.validate("sedona", {
        "CustomerName": "Miller, Jane", "TypeCode": "R", "TermCode": "NET30",
        "GroupCode": "VIP", "Group2Code": "",  # empty: no secondary group
    }) == []
    assert engine.validate("sedona", {"GroupCode": None, "Group2Code": None}) == []


def test_valid_patches(engine: PolicyEngine) -> None:
    assert engine.validate("billbee", {
        "Name": "Anna", "Email": "anna@example.org", "Tel2": None, "DefaultFax": None,
        "DefaultMailAddress": {"Value": "anna@example.org", "SubType": None},
        "MetaData": [{"TypeId": 2, "Value": "+49 30 1"}], "Type": 1,
    }) == []
    # integers are numbers; an empty string passes a format (the vendor's "no value")
    assert engine.validate("keycom", {"cooperative_sum": 100, "phone": "",
                                      "cooperative_date": "2024-02-29"}) == []
    assert engine.validate("billbee", {}) == []


def test_messages_never_contain_the_value(engine: PolicyEngine) -> None:
    patch: dict[str, Any] = {
        "email": SECRET + " x", "phone": SECRET, "name": 12, "sms_numbers": [SECRET] * 3,
        "cooperative_date": SECRET, "modified": SECRET, SECRET: 1, "status_id": SECRET,
    }
    errors = engine.validate("keycom", patch)
    # 7 fields, sms_numbers: too many items and 3 bad items
    assert len(errors) == 11
    for error in errors:
        assert SECRET not in error.message
        if error.code != "unknown_field":  # an unknown field's path is the name it was sent as
            assert SECRET not in error.path


def test_not_an_object(engine: PolicyEngine) -> None:
    assert _codes(engine.validate("keycom", ["a"])) == {"": "wrong_type"}  # type: ignore[arg-type]


def test_unknown_system(engine: PolicyEngine) -> None:
    with pytest.raises(KeyError):
        engine.validate("nosuch", {})


# -- dates and date-times: only the forms docs/policies.md names ------------------------
# Python 3.11's date.fromisoformat / datetime.fromisoformat take far more of ISO 8601
# than that (week dates, basic format, a space for the T, an hour alone, offsets with
# seconds): a value the gateway let through in such a form reached KeyCom, which answers
# 400 for anything but YYYY-MM-DD, and the client got a 502 (tests/fuzz, finding F2).

NOT_DATES = [
    "2024-W01-1",   # ISO week date, 10 characters like YYYY-MM-DD
    "2024W011", "2024-W01", "2024-001", "2024001",  # week and ordinal dates
    "20240101",     # basic format
    "2024-1-01", "2024-01-1", "24-01-01", "+2024-01-01", "02024-01-01",
    "２０２４-０１-０１", "٢٠٢٤-٠١-٠١",  # digits that are not ASCII
    " 2024-01-01", "2024-01-01 ", "2024-01-01\n",
    "2024-01-01T00:00:00", "2024-01-01T00:00:00Z", "2024-01-01 00:00",
    "2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "0000-01-01",
]
DATES = ["2024-02-29", "2024-12-31", "0001-01-01", "9999-12-31", "1970-01-01"]


@pytest.mark.parametrize("value", NOT_DATES)
def test_a_date_is_yyyy_mm_dd_and_nothing_else(engine: PolicyEngine, value: str) -> None:
    # the type date (keycom) and the format date of a string field (timelog)
    assert _codes(engine.validate("keycom", {"cooperative_date": value})) == {
        "cooperative_date": "invalid_format"}
    assert _codes(engine.validate("timelog", {"CustomerSince": value})) == {
        "CustomerSince": "invalid_format"}


@pytest.mark.parametrize("value", DATES)
def test_calendar_dates_pass(engine: PolicyEngine, value: str) -> None:
    assert engine.validate("keycom", {"cooperative_date": value}) == []
    assert engine.validate("timelog", {"CustomerSince": value}) == []


@pytest.fixture(scope="module")
def datetime_engine(tmp_path_factory: pytest.TempPathFactory) -> PolicyEngine:
    """No shipped policy has a writable date-time: a small one that has."""
    from policies import load_policy_set

    folder = tmp_path_factory.mktemp("dt")
    (folder / "x.yaml").write_text(
        "system: x\nmode: patch\nid_field: id\n"
        "masking: {editor: {public: clear, internal: clear, personal: partial, "
        "restricted: redact}}\n"
        "fields:\n  id: {type: integer, read_only: true, category: user.unique_id, "
        "sensitivity: internal}\n"
        "  at: {type: datetime, category: system.operations, sensitivity: internal,"
        " edit: {roles: [editor], purposes: [contract]}}\n",
        encoding="utf-8",
    )
    return PolicyEngine(load_policy_set([folder]), pseudonym_key=b"k" * 32, hash_salt=b"s")


DATETIMES = [
    "2024-01-01T10:00:00", "2024-01-01T10:00:00Z", "2024-01-01T23:59:59.5+05:30",
    "2024-02-29T00:00:00.123456-00:00", "2025-03-14T09:30:00.0000000Z",  # .NET's 7 digits
    "2026-11-23T18:55:45.626617Z", "0001-01-01T00:00:00+23:59",
]
NOT_DATETIMES = [
    "2024-01-01",                 # a date is not a date-time
    "2024-W01-1T10:00:00", "2024-001T10:00:00", "20240101T100000",
    "2024-01-01 10:00:00",        # a space for the T
    "2024-01-01t10:00:00", "2024-01-01T10:00:00z",
    "2024-01-01T10", "2024-01-01T10:00", "2024-01-01T1000",  # seconds are required
    "2024-01-01T10:00:00,5", "2024-01-01T10:00:00.",
    "2024-01-01T10:00:00+0530", "2024-01-01T10:00:00+05", "2024-01-01T10:00:00+05:30:15",
    "2024-01-01T10:00:00+24:00", "2024-01-01T10:00:00+05:60",
    "2024-01-01T24:00:00", "2024-01-01T10:60:00", "2024-01-01T23:59:60Z",
    "2024-02-30T10:00:00", "２０２４-01-01T10:00:00", "2024-01-01T10:00:00Z ",
]


@pytest.mark.parametrize("value", DATETIMES)
def test_date_times_in_the_documented_form_pass(datetime_engine: PolicyEngine, value: str) -> None:
    assert datetime_engine.validate("x", {"at": value}) == []


@pytest.mark.parametrize("value", NOT_DATETIMES)
def test_other_iso_forms_are_not_date_times(datetime_engine: PolicyEngine, value: str) -> None:
    assert _codes(datetime_engine.validate("x", {"at": value})) == {"at": "invalid_format"}


#: UTC offsets in whole minutes, as ISO 8601 writes them (Python may hold seconds too)
OFFSETS = st.none() | st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m)))


@given(st.dates())
def test_every_calendar_date_passes_and_only_as_written(engine: PolicyEngine, day: date) -> None:
    assert engine.validate("keycom", {"cooperative_date": day.isoformat()}) == []
    assert engine.validate("keycom", {"cooperative_date": day.strftime("%G-W%V-%u")}) != []


@given(st.datetimes(), OFFSETS, st.sampled_from(["seconds", "milliseconds", "microseconds"]))
def test_every_date_time_python_writes_passes(
    datetime_engine: PolicyEngine, moment: datetime, offset: timezone | None, spec: str
) -> None:
    text = moment.replace(tzinfo=offset).isoformat(timespec=spec)
    assert datetime_engine.validate("x", {"at": text}) == []
    assert datetime_engine.validate("x", {"at": text.replace("T", " ")}) != []
