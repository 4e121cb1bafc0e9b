"""``Idempotency-Key`` on writes (docs/clients.md, "Safe retries"; docs/api.md).

A write (a PATCH of a customer, a subject's erasure) may carry ``Idempotency-Key``: 1-255
printable ASCII characters the client chooses once per change and sends again on every
retry of it. :func:`once` runs the handler only for the first request with a key (per
principal, within ``idempotency.retention_seconds``), stores its answer once it is final,
and answers a retry with it again - status, body, ``X-Audit-Id``, ``ETag``,
``Location``/``Link`` - without forwarding or auditing anything twice. While the first
still runs, a retry waits for it (at most ``idempotency.wait_seconds``), then gets 409
``idempotency_in_progress``; the same key with another request (method, path and query,
or body) is 422 ``idempotency_key_reused``; a malformed key is 400
``idempotency_key_invalid``, before anything is read, audited or forwarded.

Final, and so replayed: every 2xx and 4xx answer but a rate limit (429), and 504
``upstream_timeout`` (the change may have landed: a retry must not send it again; the
answer points to ``GET /v1/changes/{audit_id}``). Not final, and so released for a retry
to run anew: 429, 500, 502, 503 - nothing was written. A caller that hangs up does not
stop the request: it runs to its answer, which is kept for the retry. A process that dies
with a claim keeps it until the claim expires (the longest a write can take), so no retry
runs beside a write that may still be under way.

The keys live in the audit store (:mod:`audit.idempotency`): shared by every replica on
PostgreSQL, never in clear, expired by :func:`idempotency_ctx`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from audit import AuditUnavailable
from audit.idempotency import ClaimState, IdempotencyStore, StoredAnswer
from common.canonical import canonical_json
from service.background import running
from service.errors import IdempotencyInProgress, IdempotencyKeyInvalid, IdempotencyKeyReused
from service.keys import AUDIT_ID_KEY, AUDIT_KEY, SETTINGS_KEY
from service.logs import log_event
from service.middleware import AUDIT_ID_HEADER, problem_middleware, record_problem

log = logging.getLogger("gdpr_gateway.idempotency")

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
_KEY: Final = re.compile(r"[\x20-\x7e]{1,255}")
#: the headers of a first answer a replay carries again (X-Audit-Id is set separately)
_KEPT: Final = ("ETag", "Location", "Link", "Retry-After")
#: how long a claim lasts past the longest write (app.forward_bound + the lock wait)
CLAIM_SECONDS_KEY: Final = web.AppKey("idempotency_claim_seconds", float)

Run = Callable[[], Awaitable[web.StreamResponse]]


def key_of(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key``, None without one; 400 when malformed."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if _KEY.fullmatch(value) is None:
        raise IdempotencyKeyInvalid(f"{HEADER} must be 1 to 255 printable ASCII characters")
    return value


def fingerprint(method: str, path_qs: str, body: Any) -> str:
    """What makes two requests with one key the same request."""
    canonical = canonical_json({"method": method, "path": path_qs, "body": body})
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_final(status: int) -> bool:
    """An answer a retry gets again (module docstring)."""
    return status == 504 or (status < 500 and status != 429)


async def once(
    request: web.Request,
    key: str | None,
    principal: str,
    subject: tuple[str, str],
    body: Any,
    run: Run,
) -> web.StreamResponse:
    """Run ``run`` once per idempotency key ``key`` (:func:`key_of`; every time without)."""
    if key is None:
        return await run()
    settings = request.app[SETTINGS_KEY]
    store = request.app[AUDIT_KEY].idempotency
    assert store is not None  # every AuditLog.open makes one
    key_hash = store.key_hash(principal, key)
    print_ = fingerprint(request.method, request.path_qs, body)
    claim_seconds = request.app[CLAIM_SECONDS_KEY]
    retention = settings.idempotency_retention_seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.idempotency_wait_seconds
    pause = 0.05
    while True:
        claim = await store.claim(
            key_hash, print_, subject, claim_seconds=claim_seconds, retention_seconds=retention
        )
        if claim.state is ClaimState.MISMATCH:
            raise IdempotencyKeyReused(
                f"this {HEADER} was used with another request; use a new key for a new change"
            )
        if claim.state is ClaimState.REPLAY:
            assert claim.answer is not None
            log_event(log, "idempotent_replay", status=claim.answer.status)
            return _replay(request, claim.answer)
        if claim.state is ClaimState.CLAIMED:
            work = asyncio.ensure_future(
                _run_claimed(request, store, key_hash, claim.owner, run, retention)
            )
            try:
                # a caller that hangs up (handler cancellation) does not stop the work: its
                # answer is still kept for the retry
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                work.add_done_callback(_seen)
                raise
        if loop.time() + pause > deadline:
            raise IdempotencyInProgress(
                f"a request with this {HEADER} is still running; retry later for its answer",
                retry_after=1.0,
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def _run_claimed(
    request: web.Request,
    store: IdempotencyStore,
    key_hash: str,
    owner: str,
    run: Run,
    retention: float,
) -> web.StreamResponse:
    # the handler's errors as the answer the caller gets (problem+json), to be stored
    response = await problem_middleware(request, lambda _request: run())
    if not isinstance(response, web.Response) or not is_final(response.status):
        await _quietly(store.release(key_hash, owner), "release")
        return response
    headers = {name: response.headers[name] for name in _KEPT if name in response.headers}
    audit_id = request.get(AUDIT_ID_KEY)
    if audit_id:
        headers[AUDIT_ID_HEADER] = audit_id
    raw = response.body
    answer = StoredAnswer(
        status=response.status,
        headers=headers,
        body=raw if isinstance(raw, bytes) else b"",
        content_type=response.content_type,
    )
    await _quietly(store.complete(key_hash, owner, answer, retention_seconds=retention),
                   "complete")  # fmt: skip
    return response


def _seen(work: asyncio.Future[web.StreamResponse]) -> None:
    """The work of a caller that went away: its failure is retrieved (its type logged)."""
    if not work.cancelled() and work.exception() is not None:
        log_event(log, "idempotent_work_failed", level=logging.WARNING,
                  error_type=type(work.exception()).__name__)  # fmt: skip


async def _quietly(step: Awaitable[None], what: str) -> None:
    """Storing or releasing a key must not turn an answer the caller is owed into a 5xx:
    the claim then expires by itself (a retry meanwhile waits, then gets 409)."""
    try:
        await step
    except AuditUnavailable:
        log_event(log, "idempotency_unrecorded", level=logging.WARNING, step=what)


def _replay(request: web.Request, answer: StoredAnswer) -> web.Response:
    headers = {k: v for k, v in answer.headers.items() if k != AUDIT_ID_HEADER}
    headers[REPLAYED_HEADER] = "true"
    audit_id = answer.headers.get(AUDIT_ID_HEADER)
    if audit_id:
        request[AUDIT_ID_KEY] = audit_id
    if answer.status >= 400:  # the access log names the problem, as the first time
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            record_problem(request, str(json.loads(answer.body)["code"]))
    return web.Response(
        status=answer.status, body=answer.body, headers=headers, content_type=answer.content_type
    )


# -- the expiry job ----------------------------------------------------------------------


async def expire_once(store: IdempotencyStore) -> int:
    """One run of the expiry job; a failure is logged by type and tried at the next tick."""
    try:
        removed = await store.expire()
    except AuditUnavailable:
        log_event(log, "idempotency_expiry_skipped", reason="store_unavailable")
        return 0
    except Exception as exc:  # the type only, never values
        log_event(log, "idempotency_expiry_failed", level=logging.WARNING,
                  error_type=type(exc).__name__)  # fmt: skip
        return 0
    if removed:
        log_event(log, "idempotency_keys_expired", count=removed)
    return removed


async def _expire_forever(store: IdempotencyStore, every: float) -> None:
    while True:
        await expire_once(store)
        await asyncio.sleep(every)


def idempotency_ctx(
    claim_seconds: float,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: the claim bound for :func:`once`, and the expiry loop (none when
    ``idempotency.expire_seconds`` is 0)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[CLAIM_SECONDS_KEY] = claim_seconds
        every = app[SETTINGS_KEY].idempotency_expire_seconds
        store = app[AUDIT_KEY].idempotency
        job = _expire_forever(store, every) if every > 0 and store is not None else None
        async with running(job, "idempotency-expiry"):
            yield

    return ctx
