"""``Idempotency-Key`` on writes and ``GET /v1/changes/{id}`` (issue 13, parts 1 and 2),
through HTTP against the emulators, on SQLite and on PostgreSQL.

A retry with the same key gets the first answer again and nothing is forwarded or
audited twice (the emulator counts the writes, the audit log the intents); the same key
with another body is 422; a retry while the first runs waits for it; a client that drops
its connection mid-request and retries applies once; keys expire; no key in the logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.settings import Settings
from tests.service.conftest import (
    AUDITOR,
    EDITOR,
    PRIVACY,
    SCOPED_EDITOR,
    Stack,
    make_stack,
)

KEYCOM = "/v1/systems/keycom/customers/4001"
BILLBEE = "/v1/systems/billbee/customers/1002"


def _quick(settings: Settings) -> Settings:
    upstreams = {
        name: dataclasses.replace(up, timeout_seconds=0.6, backoff_max_seconds=0.05)
        for name, up in settings.upstreams.items()
    }
    return dataclasses.replace(settings, upstreams=upstreams, idempotency_wait_seconds=1.0)


@pytest.fixture
async def quick(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in make_stack(aiohttp_client, tmp_path, tweak=_quick):
        yield s


def keyed(key: str, headers: dict[str, str] = EDITOR) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def intents(stack: Stack, customer: str) -> list[dict[str, Any]]:
    resp = await stack.client.get(
        "/v1/audit", params={"customer_id": customer, "limit": "500"}, headers=AUDITOR
    )
    return [e for e in (await resp.json())["entries"] if e["phase"] == "intent"]


async def test_a_retry_with_the_same_key_gets_the_first_answer_and_applies_once(
    any_store_stack: Stack,
) -> None:
    stack = any_store_stack
    key = f"change-{uuid.uuid4()}"
    first = await stack.client.patch(KEYCOM, json={"note": "once"}, headers=keyed(key))
    assert first.status == 200, await first.text()
    body = await first.read()
    again = await stack.client.patch(KEYCOM, json={"note": "once"}, headers=keyed(key))
    assert again.status == 200
    assert await again.read() == body
    assert again.headers["X-Audit-Id"] == first.headers["X-Audit-Id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (await stack.stats("keycom"))["PATCH"] == 1
    assert len(await intents(stack, "4001")) == 1
    # without the key, the same body is a new change
    other = await stack.client.patch(KEYCOM, json={"note": "once"}, headers=EDITOR)
    assert other.status == 200
    assert other.headers["X-Audit-Id"] != first.headers["X-Audit-Id"]


async def test_the_same_key_with_another_body_or_path_is_422(stack: Stack) -> None:
    key = "reused-key"
    first = await stack.client.patch(KEYCOM, json={"note": "a"}, headers=keyed(key))
    assert first.status == 200
    other = "/v1/systems/keycom/customers/4002"
    for path, body in ((KEYCOM, {"note": "b"}), (other, {"note": "a"})):
        resp = await stack.client.patch(path, json=body, headers=keyed(key))
        assert resp.status == 422
        assert (await resp.json())["code"] == "idempotency_key_reused"
    assert (await stack.stats("keycom"))["PATCH"] == 1


async def test_keys_are_per_principal(stack: Stack) -> None:
    key = "shared-by-accident"
    first = await stack.client.patch(KEYCOM, json={"note": "editor"}, headers=keyed(key))
    privacy = await stack.client.patch(
        KEYCOM, json={"note": "privacy"}, headers=keyed(key, PRIVACY)
    )
    assert (first.status, privacy.status) == (200, 200)
    assert first.headers["X-Audit-Id"] != privacy.headers["X-Audit-Id"]


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_a_malformed_key_is_400_and_nothing_happens(stack: Stack, value: str) -> None:
    headers = {**EDITOR, "Idempotency-Key": value.encode("utf-8").decode("latin-1")}
    resp = await stack.client.patch(KEYCOM, json={"note": "x"}, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["code"] == "idempotency_key_invalid"
    assert (await stack.stats("keycom")).get("PATCH", 0) == 0
    assert await intents(stack, "4001") == []


async def test_refusals_are_replayed_too(stack: Stack) -> None:
    key = "refused-once"
    first = await stack.client.patch(KEYCOM, json={"no_such_field": 1}, headers=keyed(key))
    assert first.status == 422
    again = await stack.client.patch(KEYCOM, json={"no_such_field": 1}, headers=keyed(key))
    assert again.status == 422
    assert await again.read() == await first.read()
    assert again.headers["X-Audit-Id"] == first.headers["X-Audit-Id"]


async def test_a_concurrent_retry_waits_for_the_first_and_gets_its_answer(quick: Stack) -> None:
    # the first PATCH hangs at the upstream for a while (held, then answered)
    await quick.fault("keycom", methods=["PATCH"], latency_ms=400)
    key = "concurrent"
    first, second = await asyncio.gather(
        quick.client.patch(KEYCOM, json={"note": "together"}, headers=keyed(key)),
        quick.client.patch(KEYCOM, json={"note": "together"}, headers=keyed(key)),
    )
    assert (first.status, second.status) == (200, 200), await second.text()
    assert first.headers["X-Audit-Id"] == second.headers["X-Audit-Id"]
    assert (await quick.stats("keycom"))["PATCH"] == 1


@pytest.fixture
async def impatient(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    """A retry waits 0.2 s for the first request with its key."""

    def tweak(settings: Settings) -> Settings:
        return dataclasses.replace(_quick(settings), idempotency_wait_seconds=0.2)

    async for s in make_stack(aiohttp_client, tmp_path, tweak=tweak):
        yield s


async def test_a_retry_past_the_wait_is_409_in_progress(impatient: Stack) -> None:
    await impatient.fault("keycom", methods=["PATCH"], latency_ms=500)
    key = "slow"
    first = asyncio.ensure_future(
        impatient.client.patch(KEYCOM, json={"note": "slow"}, headers=keyed(key))
    )
    await asyncio.sleep(0.1)
    second = await impatient.client.patch(KEYCOM, json={"note": "slow"}, headers=keyed(key))
    assert second.status == 409
    assert (await second.json())["code"] == "idempotency_in_progress"
    assert "Retry-After" in second.headers
    assert (await first).status == 200
    assert (await impatient.stats("keycom"))["PATCH"] == 1
    third = await impatient.client.patch(KEYCOM, json={"note": "slow"}, headers=keyed(key))
    assert third.headers["Idempotent-Replayed"] == "true"


async def test_a_client_that_drops_its_connection_and_retries_applies_once(quick: Stack) -> None:
    """The answer of the first attempt never reaches the client (its timeout fires while
    the upstream is slow); the retry with the same key waits and gets that answer."""
    await quick.fault("keycom", methods=["PATCH"], latency_ms=500)
    url = str(quick.client.make_url(KEYCOM))
    key = f"dropped-{uuid.uuid4()}"
    answers: list[int] = []
    async with aiohttp.ClientSession() as session:
        for _attempt in range(5):
            try:
                async with session.patch(
                    url, json={"note": "dropped"}, headers=keyed(key),
                    timeout=aiohttp.ClientTimeout(total=0.2),
                ) as resp:  # fmt: skip
                    answers.append(resp.status)
                    break
            except TimeoutError:
                await asyncio.sleep(0.05)
    assert answers and answers[-1] == 200
    assert (await quick.stats("keycom"))["PATCH"] == 1
    assert len(await intents(quick, "4001")) == 1
    assert quick.store("keycom").get(4001)["note"] == "dropped"


async def test_a_504_is_replayed_and_points_to_the_status_of_the_change(quick: Stack) -> None:
    await quick.fault("keycom", methods=["PATCH"], reset=1)
    key = "lost-answer"
    first = await quick.client.patch(KEYCOM, json={"note": "lost"}, headers=keyed(key))
    assert first.status == 504
    intent_id = first.headers["X-Audit-Id"]
    assert first.headers["Location"] == f"/v1/changes/{intent_id}"
    assert first.headers["Link"] == f'</v1/changes/{intent_id}>; rel="status"'
    again = await quick.client.patch(KEYCOM, json={"note": "lost"}, headers=keyed(key))
    assert again.status == 504
    assert again.headers["Location"] == first.headers["Location"]
    assert (await quick.stats("keycom"))["PATCH"] == 1  # never re-sent
    status = await quick.client.get(first.headers["Location"], headers=EDITOR)
    assert status.status == 200
    change = await status.json()
    assert change["state"] == "unknown"
    assert change["problem_code"] == "upstream_timeout"
    assert change["settled"] is False


async def test_an_answer_that_is_not_final_is_not_kept(quick: Stack) -> None:
    """502: nothing was written, so a retry with the same key runs again."""
    await quick.fault("keycom", methods=["PATCH"], status=503, count=10)
    key = "try-again"
    first = await quick.client.patch(KEYCOM, json={"note": "again"}, headers=keyed(key))
    assert first.status == 502, await first.text()
    sent = (await quick.stats("keycom"))["PATCH"]
    await quick.clear_faults("keycom")
    again = await quick.client.patch(KEYCOM, json={"note": "again"}, headers=keyed(key))
    assert again.status == 200
    assert (await quick.stats("keycom"))["PATCH"] == sent + 1


async def test_expired_keys_are_deleted_and_the_key_runs_anew(stack: Stack) -> None:
    key = "expires"
    first = await stack.client.patch(KEYCOM, json={"note": "e1"}, headers=keyed(key))
    assert first.status == 200
    store = stack.audit.idempotency
    assert await store.expire(now=time.time()) == 0  # within the window: kept
    assert await store.expire(now=time.time() + 86400 + 1) == 1
    again = await stack.client.patch(KEYCOM, json={"note": "e1"}, headers=keyed(key))
    assert again.status == 200
    assert again.headers["X-Audit-Id"] != first.headers["X-Audit-Id"]
    assert "Idempotent-Replayed" not in again.headers


async def test_the_erasure_is_idempotent_and_deletes_the_subjects_answers(stack: Stack) -> None:
    patched = await stack.client.patch(KEYCOM, json={"note": "p"}, headers=keyed("before-erase"))
    assert patched.status == 200
    erase = "/v1/subjects/keycom/4001/erase"
    body = {"reason": "Art. 17 request"}
    first = await stack.client.post(erase, json=body, headers=keyed("erase-1", PRIVACY))
    again = await stack.client.post(erase, json=body, headers=keyed("erase-1", PRIVACY))
    assert (first.status, again.status) == (200, 200)
    assert again.headers["X-Audit-Id"] == first.headers["X-Audit-Id"]
    rows = await stack.audit._backend.fetchall(
        "SELECT status FROM idempotency_key WHERE customer_id = ?", ["4001"]
    )
    assert rows == [(200,)]  # the erasure's own answer; the PATCH's masked record is gone
    # the PATCH's key runs anew (its stored answer is gone with the subject's data)
    retried = await stack.client.patch(KEYCOM, json={"note": "p"}, headers=keyed("before-erase"))
    assert "Idempotent-Replayed" not in retried.headers


async def test_the_key_is_not_stored_nor_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"secret-key-{uuid.uuid4().hex}"
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            resp = await stack.client.patch(KEYCOM, json={"note": "k"}, headers=keyed(key))
            assert resp.status == 200
    assert key not in caplog.text
    assert "idempotent_replay" in caplog.text
    rows = await stack.audit._backend.fetchall("SELECT key_hash, answer FROM idempotency_key")
    assert len(rows) == 1
    assert key not in repr(rows)
    assert "4001" not in rows[0][1] and "note" not in rows[0][1]  # the answer is sealed


# -- GET /v1/changes/{audit_id} -------------------------------------------------------------


async def test_the_status_of_an_applied_and_a_rejected_change(stack: Stack) -> None:
    applied = await stack.client.patch(KEYCOM, json={"note": "s"}, headers=EDITOR)
    change = await (
        await stack.client.get(f"/v1/changes/{applied.headers['X-Audit-Id']}", headers=EDITOR)
    ).json()
    assert change["state"] == "applied" and change["settled"] is True
    assert change["outcome_audit_id"] and change["resolution"] is None
    refused = await stack.client.patch(KEYCOM, json={"no_such_field": 1}, headers=EDITOR)
    resp = await stack.client.get(f"/v1/changes/{refused.headers['X-Audit-Id']}", headers=EDITOR)
    change = await resp.json()
    assert (change["state"], change["problem_code"]) == ("rejected", "validation_failed")


async def test_the_status_is_for_its_principal_and_auditors_only(stack: Stack) -> None:
    applied = await stack.client.patch(BILLBEE, json={"Name": "Status Kunde"}, headers=EDITOR)
    url = f"/v1/changes/{applied.headers['X-Audit-Id']}"
    assert (await stack.client.get(url, headers=AUDITOR)).status == 200
    other = await stack.client.get(url, headers=SCOPED_EDITOR)
    assert other.status == 404
    assert (await other.json())["code"] == "audit_entry_not_found"
    assert (await stack.client.get(url)).status == 401
    assert (await stack.client.get("/v1/changes/no-such-change", headers=EDITOR)).status == 404
    assert (await stack.client.get("/v1/changes/bad%20id", headers=EDITOR)).status == 404


@pytest.fixture(params=["sqlite", "postgres"])
async def reconciling(
    request: pytest.FixtureRequest, aiohttp_client: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Stack]:
    """The reconciler ticks every 0.1 s (it resolves unknown outcomes too); a write is
    taken to be over upstream after 0.5 s (then "not applied" may be concluded). On
    SQLite and on a PostgreSQL database of its own."""

    def tweak(settings: Settings) -> Settings:
        return dataclasses.replace(
            _quick(settings), audit_reconcile_seconds=0.1, audit_reconcile_min_age_seconds=0.5
        )

    if request.param == "sqlite":
        async for s in make_stack(aiohttp_client, tmp_path, tweak=tweak):
            yield s
        return
    name = f"resolve_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        async for s in make_stack(aiohttp_client, tmp_path, audit_url=url, tweak=tweak):
            yield s
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def poll(stack: Stack, url: str, seconds: float = 10.0) -> dict[str, Any]:
    """What a client does with the Location of a 504: poll until settled."""
    deadline = time.monotonic() + seconds
    while True:
        resp = await stack.client.get(url, headers=EDITOR)
        assert resp.status == 200
        change: dict[str, Any] = await resp.json()
        if change["settled"] or time.monotonic() > deadline:
            return change
        await asyncio.sleep(0.1)


async def test_an_unknown_outcome_that_did_not_land_is_resolved_not_applied(
    reconciling: Stack,
) -> None:
    stack = reconciling
    before = stack.store("keycom").get(4001)["note"]
    await stack.fault("keycom", methods=["PATCH"], reset=1)  # lost before it was written
    resp = await stack.client.patch(KEYCOM, json={"note": "never landed"}, headers=EDITOR)
    assert resp.status == 504
    change = await poll(stack, resp.headers["Location"])
    assert change["state"] == "unknown"  # the outcome entry stays as it was
    assert change["resolution"]["outcome"] == "not_applied", change
    assert change["settled"] is True
    assert stack.store("keycom").get(4001)["note"] == before
    verified = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert verified["ok"] is True
    # one resolution only, however many ticks ran
    entries = await (
        await stack.client.get("/v1/audit", params={"limit": "500"}, headers=AUDITOR)
    ).json()
    resolutions = [e for e in entries["entries"] if e["phase"] == "resolution"]
    assert len(resolutions) == 1
    assert resolutions[0]["intent_id"] == resp.headers["X-Audit-Id"]


async def test_an_unknown_outcome_that_landed_late_is_resolved_applied(
    reconciling: Stack,
) -> None:
    stack = reconciling
    # the write is lost and, while the gateway reads back, the record does not show it yet
    await stack.fault("keycom", methods=["PATCH"], reset=1)
    resp = await stack.client.patch(KEYCOM, json={"note": "landed late"}, headers=EDITOR)
    assert resp.status == 504
    url = resp.headers["Location"]
    # ... then it lands (as an upstream that queued the write would apply it)
    store = stack.store("keycom")
    store.put(4001, {**store.get(4001), "note": "landed late"})
    change = await poll(stack, url)
    assert change["resolution"]["outcome"] == "applied", change
    assert change["resolution"]["at"] >= change["outcome_at"]
    # review and export still read the log with the new entry kind
    review = await stack.client.get("/v1/audit/changes", headers=AUDITOR)
    assert review.status == 200
    export = await stack.client.get("/v1/subjects/keycom/4001/export", headers=PRIVACY)
    assert export.status == 200
    assert any(e["phase"] == "resolution" for e in (await export.json())["entries"])


@pytest.fixture
async def short_lived(aiohttp_client: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Stack]:
    """Keys kept 0.3 s; the expiry job runs every 0.1 s."""

    def tweak(settings: Settings) -> Settings:
        return dataclasses.replace(
            settings, idempotency_retention_seconds=0.3, idempotency_expire_seconds=0.1
        )

    async for s in make_stack(aiohttp_client, tmp_path, tweak=tweak):
        yield s


async def test_the_expiry_job_deletes_keys_past_their_retention(
    short_lived: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = short_lived
    resp = await stack.client.patch(KEYCOM, json={"note": "short"}, headers=keyed("short"))
    assert resp.status == 200
    backend = stack.audit._backend
    deadline = time.monotonic() + 10.0
    with caplog.at_level(logging.INFO):
        while await backend.fetchall("SELECT key_hash FROM idempotency_key"):
            assert time.monotonic() < deadline, "the expiry job did not delete the key"
            await asyncio.sleep(0.05)
    assert any(r.msg == "idempotency_keys_expired" for r in caplog.records)


async def test_a_retry_after_a_dead_claim_expired_does_not_send_a_change_that_landed(
    stack: Stack,
) -> None:
    """A process died after its write landed and before it kept the answer: once its
    claim expired, the retry runs anew, finds the values in place and forwards nothing."""
    from service.idempotency import fingerprint

    store = stack.audit.idempotency
    change = {"note": "landed before the crash"}
    key_hash = store.key_hash("demo-editor", "crashed")
    await store.claim(key_hash, fingerprint("PATCH", KEYCOM, change), ("keycom", "4001"),
                      claim_seconds=0.0, retention_seconds=60.0)  # fmt: skip
    upstream = stack.store("keycom")
    upstream.put(4001, {**upstream.get(4001), **change})  # the dead process's write
    resp = await stack.client.patch(KEYCOM, json=change, headers=keyed("crashed"))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["applied"], body["changed"]) == (False, [])
    assert (await stack.stats("keycom")).get("PATCH", 0) == 0


async def test_an_intent_without_an_outcome_is_pending(stack: Stack) -> None:
    """A change whose outcome is not written yet (under way, or its process died)."""
    from audit import Intent

    intent = Intent(
        actor="demo-editor", roles=("editor",), system="keycom", customer_id="4001",
        purpose="customer_service", request_id="pending-test", action="update",
        changed=("note",), before={"note": "a"}, after={"note": "b"}, protected={},
        policy_version="test",
    )  # fmt: skip
    intent_id = await stack.audit.begin(intent)
    resp = await stack.client.get(f"/v1/changes/{intent_id}", headers=EDITOR)
    change = await resp.json()
    assert (change["state"], change["settled"], change["outcome_at"]) == ("pending", False, None)
