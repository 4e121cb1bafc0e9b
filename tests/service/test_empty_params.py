"""An empty `cursor=` or `If-Match:` is the parameter not given (issue 13, item 3).

schemathesis found both: the document allows an empty cursor and an empty header, the
gateway answered 422 and 412. Now `cursor=` is the first page and an empty `If-Match`
(or one of spaces) is no precondition, as docs/api.md says.
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
