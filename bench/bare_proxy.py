"""The baseline of the throughput target: a bare aiohttp pass-through proxy.

It accepts the gateway's PATCH route and makes the same upstream calls as the gateway -
GET the record, with ``--reread`` GET it once more (the gateway's edit-conflict check),
then PUT the merged whole object (billbee) or PATCH the patch (keycom) - with no
authentication, policy, audit or masking. The gateway's throughput is
measured against this one's (docs/performance.md).

    python -m bench.bare_proxy --port 8200 --billbee URL --keycom URL
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

BILLBEE_HEADERS = {
    "X-Billbee-Api-Key": "demo-billbee-key",
    "Authorization": "Basic " + base64.b64encode(b"demo:demo-billbee-password").decode(),
}
KEYCOM_HEADERS = {"Authorization": "Token 0123456789abcdef0123456789abcdef01234567"}

SESSIONS = web.AppKey("sessions", dict)
REREAD = web.AppKey("reread", bool)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


async def patch_customer(request: web.Request) -> web.Response:
    system = request.match_info["system"]
    customer_id = request.match_info["customer_id"]
    patch = await request.json()
    session: ClientSession = request.app[SESSIONS][system]
    if system == "billbee":
        path = f"/api/v1/customers/{customer_id}"
        async with session.get(path, headers=BILLBEE_HEADERS) as resp:
            record = (await resp.json())["Data"]
        if request.app[REREAD]:
            async with session.get(path, headers=BILLBEE_HEADERS) as resp:
                await resp.json()
        async with session.put(path, json=merge(record, patch), headers=BILLBEE_HEADERS) as resp:
            result = (await resp.json())["Data"]
    elif system == "keycom":
        path = f"/customers/{customer_id}/"
        async with session.get(path, headers=KEYCOM_HEADERS) as resp:
            await resp.json()
        if request.app[REREAD]:
            async with session.get(path, headers=KEYCOM_HEADERS) as resp:
                await resp.json()
        async with session.patch(path, json=patch, headers=KEYCOM_HEADERS) as resp:
            result = await resp.json()
    else:
        raise web.HTTPNotFound()
    return web.json_response({"applied": True, "customer": result})


def create_app(upstreams: dict[str, str], *, reread: bool = False) -> web.Application:
    app = web.Application()
    app[REREAD] = reread

    async def sessions(app: web.Application) -> AsyncIterator[None]:
        app[SESSIONS] = {
            system: ClientSession(
                base_url=url,
                timeout=ClientTimeout(total=10),
                connector=TCPConnector(limit=256),
            )
            for system, url in upstreams.items()
        }
        yield
        for session in app[SESSIONS].values():
            await session.close()

    app.cleanup_ctx.append(sessions)
    app.router.add_patch("/v1/systems/{system}/customers/{customer_id}", patch_customer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--billbee", required=True)
    parser.add_argument("--keycom", required=True)
    parser.add_argument("--reread", action="store_true", help="GET twice before the write")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_app({"billbee": args.billbee, "keycom": args.keycom}, reread=args.reread),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
