"""The toy shop, emulated: two shoppers, a key, a partial update."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

from aiohttp import web

from service.emulators.httputil import int_id, json_body, same_secret
from service.emulators.keys import STORE_KEY
from service.emulators.spec import Record, SystemSpec

CREDENTIALS: Final = MappingProxyType({"api_key": "toy-key"})
WRITABLE: Final = frozenset({"name", "email", "points"})


def seed() -> dict[int, Record]:
    return {
        1: {"id": 1, "name": "Ada Toy", "email": "ada@example.org", "points": 10},
        2: {"id": 2, "name": "Bo Toy", "email": "bo@example.org", "points": 0},
    }


def generate(customer_id: int) -> Record:
    return {"id": customer_id, "name": f"Shopper {customer_id}", "email": None, "points": 0}


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _found(request: web.Request) -> tuple[int, Record] | web.Response:
    if not same_secret(request.headers.get("X-Toy-Key", ""), CREDENTIALS["api_key"]):
        return error(401, "bad key")
    customer_id = int_id(request.match_info["id"])
    record = request.app[STORE_KEY].get(customer_id) if customer_id is not None else None
    if customer_id is None or record is None:
        return error(404, "no such shopper")
    return customer_id, record


async def get_shopper(request: web.Request) -> web.Response:
    found = _found(request)
    return found if isinstance(found, web.Response) else web.json_response(found[1])


async def patch_shopper(request: web.Request) -> web.Response:
    found = _found(request)
    if isinstance(found, web.Response):
        return found
    body: Any = await json_body(request)
    if not isinstance(body, dict) or set(body) - WRITABLE:
        return error(400, "unknown field")
    customer_id, record = found
    record.update(body)
    request.app[STORE_KEY].put(customer_id, record)
    return web.json_response(record)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/shoppers/{id}", get_shopper)
    app.router.add_patch("/shoppers/{id}", patch_shopper)


SPEC = SystemSpec(name="toyshop", seed=seed, generate=generate, add_routes=add_routes,
                  error=error, credentials=CREDENTIALS)
