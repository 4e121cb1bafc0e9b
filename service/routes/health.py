"""Probes, the OpenAPI document and the metrics exposition."""

from __future__ import annotations

from aiohttp import web

from service.keys import AUDIT_KEY, LIFECYCLE_KEY, METRICS_KEY, OPENAPI_KEY, POLICIES_KEY

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


@routes.get("/openapi.yaml")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[OPENAPI_KEY], content_type="application/yaml", charset="utf-8"
    )
