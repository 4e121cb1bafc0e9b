"""The systems the gateway fronts and their effective policies."""

from __future__ import annotations

from aiohttp import web

from service.keys import GATEWAY_KEY, POLICIES_KEY
from service.routes.common import principal

routes = web.RouteTableDef()


@routes.get("/v1/systems")
async def list_systems(request: web.Request) -> web.Response:
    principal(request)
    policies = request.app[POLICIES_KEY].engine.policies
    return web.json_response(
        {
            "systems": [
                {
                    "system": name,
                    "mode": policies[name].mode,
                    "policy_version": policies[name].version,
                }
                for name in policies.systems
            ]
        }
    )


@routes.get("/v1/systems/{system}/policy")
async def system_policy(request: web.Request) -> web.Response:
    principal(request)
    system = request.match_info["system"]
    request.app[GATEWAY_KEY].connector(system)  # unknown_system
    policy = request.app[POLICIES_KEY].engine.policies[system]
    return web.json_response(
        {
            "system": system,
            "mode": policy.mode,
            "id_field": policy.id_field,
            "policy_version": policy.version,
            "fields": policy.field_table(),
        }
    )
