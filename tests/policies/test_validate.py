"""validate(): every field error at once, with the API's codes, never the value."""

from __future__ import annotations

from typing import Any

import pytest

from policies import FieldError, PolicyEngine

SECRET = "Zyx-9-Secret@example.org"  # a value that must never show up in a message


def _codes(errors: list[FieldError]) -> dict[str, str]:
    return {e.path: e.code for e in errors}


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
