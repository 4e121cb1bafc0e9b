"""Pure helpers: customer ids, version tags, field names out of upstream errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import CustomerNotFound
from service.upstreams.base import INT64_MAX, content_tag, parse_customer_id
from service.upstreams.problems import MESSAGE, field_problems, problems_for, safe_field_name


@pytest.mark.parametrize("good", ["1", "42", "2147483647"])
def test_canonical_ids_parse(good: str) -> None:
    assert parse_customer_id("x", good) == int(good)


@pytest.mark.parametrize(
    "bad", ["", "0", "007", "-1", "+1", " 1", "1 ", "1.0", "1e3", "abc", "١٢", "2147483648"]
)
def test_other_ids_are_not_found_and_not_echoed(bad: str) -> None:
    with pytest.raises(CustomerNotFound) as info:
        parse_customer_id("timelog", bad)
    if bad.strip():
        assert bad.strip() not in str(info.value)


def test_int64_ids() -> None:
    assert parse_customer_id("billbee", str(INT64_MAX), INT64_MAX) == INT64_MAX
    with pytest.raises(CustomerNotFound):
        parse_customer_id("billbee", str(INT64_MAX + 1), INT64_MAX)


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(), st.none())))
def test_content_tag_ignores_key_order(record: dict[str, object]) -> None:
    reordered = dict(reversed(list(record.items())))
    assert content_tag(record) == content_tag(reordered)


def test_content_tag_changes_with_a_value() -> None:
    assert content_tag({"a": 1}) != content_tag({"a": 2})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Name", "Name"),
        ("customer.CustomerName", "CustomerName"),
        ("CustomerBillPrimary.Email", "CustomerBillPrimary.Email"),
        ("MetaData[0].Value", "MetaData[0].Value"),
        ("Alice Example", None),
        ("a@b.example", None),
        ("", None),
        (7, None),
    ],
)
def test_safe_field_name(raw: object, expected: str | None) -> None:
    assert safe_field_name(raw) == expected


def test_field_problems_read_the_usual_shapes() -> None:
    django = {"email": ["Enter a valid email address."], "sms_numbers": {"0": ["bad"]}}
    assert [p.field for p in field_problems(django)] == ["email", "sms_numbers"]
    aspnet = {"Message": "The request is invalid.", "ModelState": {"customer.TermCode": ["x"]}}
    assert [p.field for p in field_problems(aspnet)] == ["TermCode"]
    listed = {"errors": [{"field": "Name", "message": "too long"}]}
    assert [p.field for p in field_problems(listed)] == ["Name"]
    assert all(p.message == MESSAGE for p in field_problems(django))


def test_unknown_names_are_dropped_when_fields_are_known() -> None:
    problems = problems_for(["Name", "Smith", "MetaData[0].Value"], known={"Name", "MetaData"})
    assert [p.field for p in problems] == ["Name", "MetaData[0].Value"]


def test_a_connector_without_its_credentials_or_calls_cannot_be_built() -> None:
    """The base declares fetch, apply and _auth abstract: a system that forgets one is
    refused when it is built, not at its first call."""
    from service.upstreams.transport import HttpConnector

    class Forgetful(HttpConnector):  # fetch and apply, but no _auth
        system = "forgetful"

        async def fetch(self, customer_id: str) -> dict[str, object]:
            return {}

        async def apply(self, customer_id: str, body: dict[str, object]) -> dict[str, object]:
            return body

    with pytest.raises(TypeError, match="_auth"):
        Forgetful(None, None)  # type: ignore[arg-type]
    assert HttpConnector.__abstractmethods__ == frozenset({"fetch", "apply", "_auth"})
