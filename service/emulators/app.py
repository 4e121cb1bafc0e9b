"""``create_emulator``: one aiohttp app per upstream, with faults, stats and admin routes."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import struct
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from service import registry
from service.emulators.faults import HANG_MAX_SECONDS, FaultPlan, FaultPlanError, FaultState
from service.emulators.keys import FAULTS_KEY, LIMITER_KEY, SPEC_KEY, STATS_KEY, STORE_KEY
from service.emulators.ratelimit import RateLimiter
from service.emulators.spec import SystemSpec
from service.emulators.stats import Stats
from service.emulators.store import CustomerStore

ADMIN_PREFIX = "/_emulator"
#: the body of a ``malformed`` fault: JSON cut short
MALFORMED_BODY = b'{"truncated": '


def create_emulator(
    system: str | SystemSpec,
    *,
    rate_limit: bool = True,
    retry_after: bool = True,
    faults: FaultPlan | None = None,
) -> web.Application:
    """The emulator of ``system`` (a system of ``service.registry.SYSTEMS``, or the spec
    of another) with a fresh seeded store.

    ``rate_limit``/``retry_after`` concern the limit a spec enforces (billbee's 2
    requests/second; the other systems have none and ignore them); ``faults`` is the
    starting plan.
    """
    if isinstance(system, SystemSpec):
        spec = system
    else:
        # the registry names each system's emulator; it is read when called, not on
        # import (the registry imports this package's system modules)
        shipped = registry.SYSTEMS
        if system not in shipped:
            raise ValueError(f"unknown system; expected one of {', '.join(shipped)}")
        spec = shipped[system].emulator
    app = web.Application(middlewares=[_emulator_middleware])
    app[SPEC_KEY] = spec
    app[STORE_KEY] = CustomerStore(spec.seed(), spec.generate)
    app[STATS_KEY] = Stats()
    app[FAULTS_KEY] = FaultState.starting_with(faults)
    limiter = RateLimiter(enabled=rate_limit, retry_after=retry_after)
    if spec.rate_limit_per_second is not None:
        limiter.per_second = spec.rate_limit_per_second
    app[LIMITER_KEY] = limiter
    app.on_shutdown.append(_release_hung_on_stop)
    _add_admin_routes(app)
    spec.add_routes(app)
    return app


async def _release_hung_on_stop(app: web.Application) -> None:
    app[FAULTS_KEY].release_hung()


def is_loopback_peer(remote: str | None) -> bool:
    """True only for a loopback peer address (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@web.middleware
async def _emulator_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
        if not is_loopback_peer(request.remote):
            return web.json_response({"error": "admin endpoints are loopback only"}, status=403)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
    app[STATS_KEY].count(request.method)
    action = app[FAULTS_KEY].take(request.method)
    if action.latency_s:
        await asyncio.sleep(action.latency_s)
    if action.after_write and (action.hang or action.reset or action.malformed):
        # the upstream did the work; only its answer is lost or cut short
        with contextlib.suppress(web.HTTPException):
            await handler(request)
    if action.hang:
        event = app[FAULTS_KEY].release_event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), HANG_MAX_SECONDS)
        return _drop_connection(request, rst=False)
    if action.reset:
        return _drop_connection(request, rst=True)
    if action.malformed:
        return web.Response(status=200, body=MALFORMED_BODY, content_type="application/json")
    spec = app[SPEC_KEY]
    if action.status is not None:
        response = spec.error(action.status, "Injected fault")
        if action.retry_after is not None:
            response.headers["Retry-After"] = str(action.retry_after)
        return response
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return spec.error(exc.status, exc.reason)


def _drop_connection(request: web.Request, *, rst: bool) -> web.Response:
    """Close the connection without an answer (RST when ``rst``).

    The returned response is never delivered: aiohttp finds the transport closed and
    treats it as a client that went away.
    """
    transport = request.transport
    if transport is None:
        return web.Response(status=500)
    sock = transport.get_extra_info("socket")
    if rst and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response(status=500)


# ---- admin routes -------------------------------------------------------------------


def _add_admin_routes(app: web.Application) -> None:
    app.router.add_get(f"{ADMIN_PREFIX}/stats", _get_stats)
    app.router.add_get(f"{ADMIN_PREFIX}/faults", _get_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/faults", _set_faults)
    app.router.add_delete(f"{ADMIN_PREFIX}/faults", _clear_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", _reset)
    app.router.add_get(f"{ADMIN_PREFIX}/settings", _get_settings)
    app.router.add_post(f"{ADMIN_PREFIX}/settings", _set_settings)


async def _admin_json(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads) if await request.read() else {}
    except ValueError:
        raise web.HTTPBadRequest(reason="body is not JSON") from None


async def _get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].snapshot())


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS_KEY].plan.to_json())


async def _set_faults(request: web.Request) -> web.Response:
    body = await _admin_json(request)
    try:
        plan = FaultPlan.from_json(body)
    except FaultPlanError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[FAULTS_KEY].set(plan)
    return web.json_response(plan.to_json())


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS_KEY].clear()
    return web.json_response(request.app[FAULTS_KEY].plan.to_json())


def reset_emulator(app: web.Application) -> None:
    """Back to the start: seed store, zero counters, the construction-time fault plan
    (hung requests let go), no rate-limit history."""
    app[STORE_KEY].reset()
    app[STATS_KEY].reset()
    app[FAULTS_KEY].restore()
    app[LIMITER_KEY].reset()


async def _reset(request: web.Request) -> web.Response:
    reset_emulator(request.app)
    return web.json_response({"reset": True})


def _settings_json(limiter: RateLimiter) -> dict[str, bool]:
    return {"rate_limit": limiter.enabled, "retry_after": limiter.retry_after}


async def _get_settings(request: web.Request) -> web.Response:
    return web.json_response(_settings_json(request.app[LIMITER_KEY]))


async def _set_settings(request: web.Request) -> web.Response:
    body = await _admin_json(request)
    if not isinstance(body, dict) or set(body) - {"rate_limit", "retry_after"}:
        return web.json_response(
            {"error": "body must be an object with rate_limit and/or retry_after"}, status=400
        )
    if not all(isinstance(v, bool) for v in body.values()):
        return web.json_response({"error": "values must be booleans"}, status=400)
    limiter = request.app[LIMITER_KEY]
    limiter.enabled = body.get("rate_limit", limiter.enabled)
    limiter.retry_after = body.get("retry_after", limiter.retry_after)
    if not limiter.enabled:
        limiter.reset()
    return web.json_response(_settings_json(limiter))
