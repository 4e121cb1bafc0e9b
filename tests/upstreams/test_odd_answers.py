"""Answers the emulators never give but a real upstream might: each connector's own
reading of them, against small loopback servers speaking the system's paths."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from service.errors import UpstreamError
from service.registry import build_connector
from tests.upstreams.harness import demo_settings


async def serve(aiohttp_server: Any, routes: list[web.RouteDef]) -> str:
    app = web.Application()
    app.add_routes(routes)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def test_sedona_put_without_an_answer_body_reads_the_record_back(
    aiohttp_server: Any,
) -> None:
    stored: dict[str, Any] = {"CustomerId": 2001, "CustomerName": "Carter, Emily"}
    seen: list[str] = []

    async def get(request: web.Request) -> web.Response:
        seen.append("GET")
        return web.json_response(stored)

    async def put(request: web.Request) -> web.Response:
        seen.append("PUT")
        stored.update(await request.json())
        return web.Response(status=204)

    url = await serve(aiohttp_server, [web.get("/api/customer/{id}", get),
                                       web.put("/api/customer/{id}", put)])
    connector = build_connector(demo_settings("sedona", url))
    try:
        after = await connector.apply(
            "2001", {"CustomerName": "Carter, Emma", "BalanceDue": 3.0}
        )
    finally:
        await connector.close()
    assert after == {"CustomerId": 2001, "CustomerName": "Carter, Emma"}
    assert "BalanceDue" not in stored  # a computed field is never sent
    assert seen == ["PUT", "GET"]


async def test_billbee_error_code_in_a_200_is_an_error(aiohttp_server: Any) -> None:
    async def get(request: web.Request) -> web.Response:
        return web.json_response(
            {"ErrorCode": 99, "ErrorMessage": "Something", "ErrorDescription": None,
             "Data": None}
        )

    url = await serve(aiohttp_server, [web.get("/api/v1/customers/{id}", get)])
    connector = build_connector(demo_settings("billbee", url))
    try:
        with pytest.raises(UpstreamError) as info:
            await connector.fetch("1002")
    finally:
        await connector.close()
    assert info.value.upstream_status == 200


async def test_timelog_answer_for_another_customer_is_an_error(aiohttp_server: Any) -> None:
    async def put(request: web.Request) -> web.Response:
        return web.json_response({"Properties": {"CustomerID": 1, "No": "x", "VATNo": None}})

    url = await serve(aiohttp_server, [web.put("/demo/api/v1/customer/update", put)])
    connector = build_connector(demo_settings("timelog", url))
    try:
        with pytest.raises(UpstreamError, match="another customer"):
            await connector.apply("3001", {"Name": "x"})
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("system", "path", "body"),
    [
        ("timelog", "/demo/api/v1/customer/{id}", {"Links": []}),
        ("billbee", "/api/v1/customers/{id}", {"ErrorCode": 0, "Data": [1]}),
        ("sedona", "/api/customer/{id}", [1, 2]),
        ("keycom", "/customers/{id}/", {"name": "no id"}),
    ],
)
async def test_wrong_shapes_are_malformed(
    aiohttp_server: Any, system: str, path: str, body: Any
) -> None:
    async def get(request: web.Request) -> web.Response:
        return web.json_response(body)

    url = await serve(aiohttp_server, [web.get(path, get)])
    connector = build_connector(demo_settings(system, url))
    try:
        with pytest.raises(UpstreamError, match="malformed"):
            await connector.fetch("5")
    finally:
        await connector.close()
    assert connector.breaker.consecutive_failures == 0  # a shape error is no outage
