"""Typed application keys of an emulator app (in-process tests read the store here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from service.emulators.faults import FaultState
from service.emulators.httputil import int_id
from service.emulators.ratelimit import RateLimiter
from service.emulators.spec import SystemSpec
from service.emulators.stats import Stats
from service.emulators.store import CustomerStore, Record

STORE_KEY = web.AppKey("emulator_store", CustomerStore)
STATS_KEY = web.AppKey("emulator_stats", Stats)
FAULTS_KEY = web.AppKey("emulator_faults", FaultState)
LIMITER_KEY = web.AppKey("emulator_rate_limiter", RateLimiter)
SPEC_KEY = web.AppKey("emulator_system", SystemSpec)


def requested_customer(request: web.Request) -> tuple[int | None, Record | None]:
    """The path's customer id (``None`` unless a plain integer) and its stored record."""
    customer_id = int_id(request.match_info["id"])
    record = None if customer_id is None else request.app[STORE_KEY].get(customer_id)
    return customer_id, record


Guard = Callable[[web.Request], "web.Response | None"]


def customer_reader(
    guard: Guard,
    not_found: Callable[[web.Request], web.Response],
    render: Callable[[web.Request, Record], web.Response],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``GET`` of one customer: the system's guard (credentials, version, rate limit)
    first, then its not-found answer or its rendering of the stored record."""

    async def get_customer(request: web.Request) -> web.Response:
        refused = guard(request)
        if refused is not None:
            return refused
        _, record = requested_customer(request)
        return not_found(request) if record is None else render(request, record)

    return get_customer
