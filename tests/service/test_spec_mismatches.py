"""What the document allows, the gateway accepts (issue 13, item 3).

schemathesis found these: the document allows an empty cursor and an empty header, the
gateway answered 422 and 412; now `cursor=` is the first page and an empty `If-Match`
(or one of spaces) is no precondition, as docs/api.md says. Against the typed PATCH
schemas it found `2.0` refused for an integer field (JSON Schema: the same number as
`2`); now it is the integer, and what is forwarded is `2`.
"""

from __future__ import annotations

from tests.service.conftest import AUDITOR, EDITOR, Stack


async def test_an_empty_cursor_is_the_first_page(stack: Stack) -> None:
    resp = await stack.client.patch(
        "/v1/systems/keycom/customers/4001", json={"note": "paged"}, headers=EDITOR
    )
    assert resp.status == 200
    for route in ("/v1/audit", "/v1/audit/changes"):
        first = await stack.client.get(route, params={"limit": "1"}, headers=AUDITOR)
        empty = await stack.client.get(route, params={"limit": "1", "cursor": ""},
                                       headers=AUDITOR)
        assert first.status == empty.status == 200, route
        assert await empty.json() == await first.json(), route
        bad = await stack.client.get(route, params={"cursor": "garbage"}, headers=AUDITOR)
        assert bad.status == 422, route  # a cursor that is given is still checked


async def test_an_empty_if_match_is_no_precondition(stack: Stack) -> None:
    url = "/v1/systems/billbee/customers/1002"
    for i, value in enumerate(("", "  ")):
        resp = await stack.client.patch(
            url, json={"Tel1": f"+49 30 123456{i}"}, headers={**EDITOR, "If-Match": value}
        )
        assert resp.status == 200, repr(value)
        assert (await resp.json())["applied"] is True
    stale = await stack.client.patch(
        url, json={"Tel1": "+49 30 7654321"}, headers={**EDITOR, "If-Match": '"stale"'}
    )
    assert stale.status == 412  # a tag that is given is still compared


async def test_a_whole_number_with_a_fraction_is_that_integer(stack: Stack) -> None:
    url = "/v1/systems/keycom/customers/4001"
    raw = b'{"language_id": 2.0, "apartment_id": 1e2}'
    resp = await stack.client.patch(
        url, data=raw, headers={**EDITOR, "Content-Type": "application/json"}
    )
    assert resp.status == 200
    stored = stack.store("keycom").get(4001)
    assert stored["language_id"] == 2 and type(stored["language_id"]) is int
    assert stored["apartment_id"] == 100 and type(stored["apartment_id"]) is int
    for bad in (b'{"language_id": 2.5}', b'{"language_id": 1e300}'):
        resp = await stack.client.patch(
            url, data=bad, headers={**EDITOR, "Content-Type": "application/json"}
        )
        assert resp.status == 422, bad
        assert (await resp.json())["errors"][0]["code"] == "wrong_type"
