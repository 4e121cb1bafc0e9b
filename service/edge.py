"""The one middleware of the gateway: every request passes it once.

It does, in one frame, what four middlewares did (issue 11: less work per request):

* the lifecycle (``service.shutdown``): counts the request as under way, and while
  draining closes the connection after the answer;
* the request context (``service.middleware``): the request id in and out,
  ``X-Audit-Id`` when an entry was written, and one access line;
* the metrics: requests by system, route template and status (bounded labels);
* errors as problem+json (``service.middleware.problem_for``): nothing internal in a body.

The separate middlewares of ``service.middleware`` remain for applications that need
only a part (tests of one concern); the gateway's ``create_app`` uses this one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from service.keys import LIFECYCLE_KEY, METRICS_KEY, REQUEST_ID_KEY, SETTINGS_KEY
from service.middleware import (
    REQUEST_ID_HEADER,
    access_line,
    problem_for,
    request_id_for,
    route_template,
    stamp_ids,
)


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Lifecycle, request context, metrics and problem+json, in this order of nesting."""
    app = request.app
    lifecycle = app[LIFECYCLE_KEY]
    request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    cancelled = False
    requests = lifecycle.requests
    requests.enter()  # the request is under way (what the drain waits for)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            problem = problem_for(request, exc)
            if problem is None:
                response = exc  # a redirect: aiohttp answers with the exception
                raise
            response = problem
        except asyncio.CancelledError:  # the client went away
            cancelled = True
            raise
        except Exception as exc:
            response = problem_for(request, exc)
            if response is None:  # pragma: no cover - only an HTTPException is None
                raise
    finally:
        try:
            stamp_ids(request, response, request_id)
            # Counted and logged once the answer is written: aiohttp writes it in the
            # step this returns in (nothing suspends there), so the loop runs this after
            # the write, not on the answer's path (issue 11). The duration is now's.
            _answered(request, response, time.perf_counter() - started, cancelled)
        finally:
            requests.leave()
    if lifecycle.draining:
        response.force_close()
    return response


#: the answers of this loop iteration not yet counted and logged, and the loop a call
#: of :func:`_count_answered` is due on (``None``: none is due)
_answers: list[tuple[web.Request, web.StreamResponse | None, float, bool]] = []
_due_on: list[asyncio.AbstractEventLoop | None] = [None]


def _answered(
    request: web.Request, response: web.StreamResponse | None, seconds: float, cancelled: bool
) -> None:
    """Count and log this answer after it is written, with the others of this loop
    iteration: one callback of the loop for all of them, not one each (issue 11)."""
    _answers.append((request, response, seconds, cancelled))
    loop = asyncio.get_running_loop()
    if _due_on[0] is not loop:  # none due on this loop (or one due on a loop now gone)
        _due_on[0] = loop
        loop.call_soon(_count_answered)


def _count_answered() -> None:
    """The answers waiting, counted and logged in the order they were answered."""
    _due_on[0] = None
    answers = _answers[:]
    _answers.clear()
    for request, response, seconds, cancelled in answers:
        try:
            _count_and_log(request, response, seconds, cancelled)
        except Exception:  # pragma: no cover - one answer's failure must not lose the rest
            logging.getLogger("gdpr_gateway.edge").exception("answer_not_counted")


def _count_and_log(
    request: web.Request, response: web.StreamResponse | None, seconds: float, cancelled: bool
) -> None:
    """Requests by system, route template and status (labels stay bounded), and the
    access line; what both need of the route and the system is worked out once per kind
    of answer (``service.answer_facts``)."""
    app = request.app
    facts = app[METRICS_KEY].answer_facts(
        route_template(request),
        request.match_info.get("system"),
        response.status if response is not None else 500,
        app[SETTINGS_KEY].upstreams,
    )
    facts.counter.inc()
    facts.duration.observe(seconds if seconds > 0.0 else 0.0)
    access_line(
        request, response, 0.0, cancelled=cancelled, route=facts.route, system=facts.system,
        seconds=seconds,
    )  # fmt: skip
