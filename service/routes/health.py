"""Probes, the OpenAPI document and the metrics exposition."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.keys import AUDIT_KEY, LIFECYCLE_KEY, METRICS_KEY, OPENAPI_KEY, POLICIES_KEY
from service.openapi_gen import Rendered

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    audit_up = AUDIT_KEY in request.app and await request.app[AUDIT_KEY].ping()
    if AUDIT_KEY in request.app:
        request.app[METRICS_KEY].audit_store(audit_up)
    # 503 from the first moment of a shutdown: the endpoint leaves the Service while
    # this process still answers (service/shutdown.py)
    checks = {
        "accepting": not request.app[LIFECYCLE_KEY].draining,
        "policies": POLICIES_KEY in request.app,
        "audit": audit_up,
    }
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


async def _document(request: web.Request) -> Rendered:
    """The document for the policy set in force (built again after a reload)."""
    cache = request.app[OPENAPI_KEY]
    policies = request.app[POLICIES_KEY].engine.policies
    rendered = cache.fresh(policies)
    return rendered if rendered is not None else await asyncio.to_thread(cache.get, policies)


def _answer(request: web.Request, rendered: Rendered, body: bytes, kind: str) -> web.Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if rendered.etag in request.headers.getall("If-None-Match", []):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)


@routes.get("/openapi.yaml")
async def openapi(request: web.Request) -> web.Response:
    rendered = await _document(request)
    return _answer(request, rendered, rendered.yaml, "application/yaml")


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    rendered = await _document(request)
    return _answer(request, rendered, rendered.json, "application/json")
