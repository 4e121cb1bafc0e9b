"""PATCH and GET of one customer record in one system."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.access import CHANGE_RECORD, READ_RECORD
from service.errors import GatewayError
from service.gateway_types import Admitted
from service.idempotency import key_of, once
from service.keys import AUDIT_ID_KEY, GATEWAY_KEY
from service.routes.common import answer, flag, gateway_request, if_match, json_object

routes = web.RouteTableDef()
PATH = "/v1/systems/{system}/customers/{customer_id}"


@routes.patch(PATH)
async def patch_customer(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY_KEY]
    system = request.match_info["system"]
    # 401, then 404 for an id that cannot be one: before anything is read or audited
    req = gateway_request(request, system)
    # 404 unknown_system and 403 forbidden before the body is read
    admitted = gateway.admit(req, CHANGE_RECORD)
    key = key_of(request)  # 400 for a malformed Idempotency-Key, before the body
    patch = await json_object(request)
    if key is None:  # once() would run it at once: called directly, no closure, no frame
        return await _update(request, admitted, patch)

    async def run() -> web.Response:
        return await _update(request, admitted, patch)

    subject = (system, req.customer_id)
    return await once(request, key, req.principal.name, subject, patch, run)


async def _update(request: web.Request, admitted: Admitted, patch: dict[str, Any]) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    req = admitted.request
    try:
        result = await gateway.update(
            admitted,
            patch,
            dry_run=flag(request, "dry_run"),
            if_match=if_match(request),
        )
    except GatewayError as exc:
        if exc.audit_id:
            request[AUDIT_ID_KEY] = exc.audit_id
        raise
    return answer(
        request,
        {
            "system": req.system,
            "customer_id": req.customer_id,
            "applied": result.applied,
            "dry_run": result.dry_run,
            "changed": list(result.changed),
            "customer": result.customer,
            "audit_id": result.audit_id,
            "policy_version": result.policy_version,
        },
        audit_id=result.audit_id,
    )


@routes.get(PATH)
async def get_customer(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    system = request.match_info["system"]
    req = gateway_request(request, system)
    result = await gateway.read(gateway.admit(req, READ_RECORD))
    return answer(
        request,
        {
            "system": system,
            "customer_id": req.customer_id,
            "customer": result.customer,
            "policy_version": result.policy_version,
        },
        audit_id=result.audit_id,
        headers={"ETag": result.etag},
    )
