"""The reference of the throughput target: a bare aiohttp proxy making the gateway's
upstream calls for a change, and nothing else.

It accepts the gateway's PATCH route and makes the same upstream calls as the gateway
(``service/gateway.py`` and ``service/upstreams/``), with the same credentials:

* keycom (native partial update): GET the record, then PATCH ``customers/{id}/`` with
  the patch as sent (the gateway makes no edit-conflict re-read there: a PATCH cannot
  overwrite a field it does not send; ``KeycomConnector.conflict_reread``);
* billbee (read-merge-PUT): GET ``/api/v1/customers/{id}``, with ``--reread`` GET again
  (the gateway's edit-conflict re-read), merge the patch into the record (RFC 7396),
  leave out the fields a PUT does not take (``ArchivedAt``, ``RestoredAt``), set ``Id``
  and PUT the whole object.

``--reread`` stands for the gateway's ``conflict_check`` setting; which system re-reads
is its connector's ``conflict_reread``, read here from the same class.

No authentication, policy, audit, masking or metrics. ``bench/checks.py`` checks with
the emulator's counters that both make the same calls per change. An upstream answer
that is not 2xx is passed on as 502, so the checker sees it.

``--processes N`` (N > 1) runs it as ``gdpr-gateway serve --workers N`` runs the gateway:
a parent forks N processes, each serving the app on its own event loop and listening on
the port with ``SO_REUSEPORT`` (the kernel spreads the connections over them); the
parent forwards SIGTERM/SIGINT to them and exits once they have (0 if each did).

    python -m bench.bare_proxy --port 8200 --billbee URL --keycom URL [--reread] [--uvloop]
        [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import os
import signal
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from service.emulators import billbee as billbee_emulator
from service.emulators import keycom as keycom_emulator
from service.upstreams.billbee import BillbeeConnector
from service.upstreams.keycom import KeycomConnector

_BILLBEE = billbee_emulator.CREDENTIALS
BILLBEE_HEADERS = {
    "X-Billbee-Api-Key": _BILLBEE["api_key"],
    "Authorization": "Basic "
    + base64.b64encode(f"{_BILLBEE['username']}:{_BILLBEE['password']}".encode()).decode(),
}
KEYCOM_HEADERS = {"Authorization": f"Token {keycom_emulator.CREDENTIALS['token']}"}
#: in a billbee record, not taken by a PUT (as service/upstreams/billbee.py)
BILLBEE_NOT_WRITTEN = frozenset({"ArchivedAt", "RestoredAt"})

SESSIONS = web.AppKey("sessions", dict)
REREAD = web.AppKey("reread", bool)


class UpstreamFailed(Exception):
    pass


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


async def _call(session: ClientSession, method: str, path: str, headers: dict[str, str],
                body: Any = None) -> Any:
    async with session.request(method, path, json=body, headers=headers) as resp:
        answer = await resp.json()
        if not 200 <= resp.status < 300:
            raise UpstreamFailed(f"{method} answered {resp.status}")
        return answer


async def billbee_change(session: ClientSession, cid: str, patch: dict[str, Any],
                         reread: bool) -> Any:
    path = f"/api/v1/customers/{cid}"
    record = (await _call(session, "GET", path, BILLBEE_HEADERS))["Data"]
    if reread:
        await _call(session, "GET", path, BILLBEE_HEADERS)
    body = {k: v for k, v in merge(record, patch).items() if k not in BILLBEE_NOT_WRITTEN}
    body["Id"] = int(cid)
    return (await _call(session, "PUT", path, BILLBEE_HEADERS, body))["Data"]


async def keycom_change(session: ClientSession, cid: str, patch: dict[str, Any],
                        reread: bool) -> Any:
    path = f"/customers/{cid}/"
    await _call(session, "GET", path, KEYCOM_HEADERS)
    if reread:
        await _call(session, "GET", path, KEYCOM_HEADERS)
    return await _call(session, "PATCH", path, KEYCOM_HEADERS, patch)


CHANGES = {"billbee": billbee_change, "keycom": keycom_change}
#: the systems whose change re-reads before the write when the conflict check is on
REREADS = {
    "billbee": BillbeeConnector.conflict_reread,
    "keycom": KeycomConnector.conflict_reread,
}


async def patch_customer(request: web.Request) -> web.Response:
    change = CHANGES.get(request.match_info["system"])
    if change is None:
        raise web.HTTPNotFound()
    patch = await request.json()
    session: ClientSession = request.app[SESSIONS][request.match_info["system"]]
    try:
        result = await change(
            session, request.match_info["customer_id"], patch,
            request.app[REREAD] and REREADS[request.match_info["system"]],
        )
    except UpstreamFailed as exc:
        return web.json_response({"applied": False, "detail": str(exc)}, status=502)
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


_PR_SET_PDEATHSIG = 1


def run_processes(count: int, serve: Callable[[], None]) -> int:
    """Fork ``count`` processes running ``serve``; forward SIGTERM/SIGINT to them; the
    exit status: 0 once every one exited 0, else 1."""
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # a child: dies with the parent, serves, never returns
            status = 1
            try:
                with contextlib.suppress(OSError, AttributeError):
                    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
                serve()
                status = 0
            except Exception:
                traceback.print_exc()
            finally:
                os._exit(status)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    for child in children:
        _, status = os.waitpid(child, 0)  # retried after a signal (PEP 475)
        failed = failed or os.waitstatus_to_exitcode(status) != 0
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--billbee", required=True)
    parser.add_argument("--keycom", required=True)
    parser.add_argument("--reread", action="store_true",
                        help="GET twice before the write where the gateway does")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes sharing the port (SO_REUSEPORT), as serve --workers")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    def serve() -> None:
        web.run_app(
            create_app({"billbee": args.billbee, "keycom": args.keycom}, reread=args.reread),
            host="127.0.0.1",
            port=args.port,
            access_log=None,
            print=None,
            reuse_port=args.processes > 1 or None,
        )

    if args.processes == 1:
        serve()
        return 0
    return run_processes(args.processes, serve)


if __name__ == "__main__":
    raise SystemExit(main())
