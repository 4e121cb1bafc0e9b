"""The full way of a batch (:mod:`audit.commit`) as one chain step: a batch of subjects new
to the process costs one transaction whatever their number (on SQLite one trip to the
writer thread), their keys are found again by a process that starts later, and a key
erased by another process is never used again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from audit import AuditLog, AuditUnavailable, Outcome
from audit.crypto import Sealer
from tests.audit.conftest import EMAIL_AFTER, make_intent, sql

PO = {"actor": "olga", "roles": ("privacy_officer",)}
SUBJECTS = [str(5000 + n) for n in range(40)]


def _count_chain_steps(log: AuditLog) -> list[int]:
    """Wrap the store's ``chain`` (white-box): one item per full-way transaction, the
    number of queries its step asked for."""
    backend: Any = log._writer._committer._backend
    steps: list[int] = []
    original = backend.chain

    async def counted(step: Any, *, durable: bool = True) -> None:
        asked = [0]

        def counting(head: Any) -> Any:
            work = step(head)
            rows = None
            while True:
                try:
                    query = work.send(rows)
                except StopIteration as done:
                    return done.value
                asked[0] += 1
                rows = yield query

        await original(counting, durable=durable)
        steps.append(asked[0])

    backend.chain = counted
    return steps


def _sqlite_trips(log: AuditLog) -> list[str]:
    """Wrap the SQLite backend's hop to its writer thread (white-box): the functions run."""
    backend: Any = log._writer._committer._backend
    trips: list[str] = []
    original = backend._on_writer

    async def counted(fn: Any, *args: Any) -> Any:
        trips.append(fn.__name__)
        return await original(fn, *args)

    backend._on_writer = counted
    return trips


async def test_a_batch_of_new_subjects_is_one_transaction_and_their_keys_outlive_the_process(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, **keys)
    try:
        await log.record(make_intent("4999"), Outcome("applied"))  # the writer is idle again
        steps = _count_chain_steps(log)
        trips = _sqlite_trips(log) if store_url.startswith("sqlite") else None
        first = await asyncio.gather(*(log.begin(make_intent(cid)) for cid in SUBJECTS))
    finally:
        await log.close()
    # every batch went the full way (no key was cached), each in one transaction that
    # asked for the missing keys and checked the master key in one query
    assert steps and all(asked == 1 for asked in steps)
    if trips is not None:
        assert trips.count("_w_chain") == len(steps)
        assert "_w_fetchall" not in trips  # no query made a trip of its own
    stored = await sql(store_url, "SELECT count(*) FROM audit_subject_key")
    assert stored[0][0] == len(SUBJECTS) + 1

    later = await AuditLog.open(store_url, **keys)
    try:
        steps = _count_chain_steps(later)
        again = await asyncio.gather(*(later.begin(make_intent(cid)) for cid in SUBJECTS))
        # found in one lookup per transaction, none made (no master-key check needed)
        assert steps and all(asked == 1 for asked in steps)
        assert (await sql(store_url, "SELECT count(*) FROM audit_subject_key"))[0][0] == len(
            SUBJECTS
        ) + 1
        for audit_id in (first[0], first[-1], again[0], again[-1]):
            clear, _ = await later.reveal(audit_id, reason="check", request_id="r", **PO)
            assert clear["after"]["Email"] == EMAIL_AFTER
        assert (await later.verify()).ok
    finally:
        await later.close()


def _cached(log: AuditLog, cid: str) -> Sealer:
    (sealer,) = [key[1] for slot, key in log._writer._keyring.cached.items()
                 if slot[:2] == ("billbee", cid)]  # fmt: skip
    return sealer


async def test_a_key_erased_by_another_process_is_not_used_in_a_batch_with_new_subjects(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, **keys)
    try:
        first = await log.record(make_intent("1002"), Outcome("applied"))
        sealer = _cached(log, "1002")
        other = await AuditLog.open(store_url, **keys)
        try:
            await other.erase("billbee", "1002", reason="Art. 17", request_id="r", **PO)
        finally:
            await other.close()
        # the erased subject's entry (sealed by its caller under the old cached key) in
        # one batch with subjects new to the store
        ids = await asyncio.gather(
            log.begin(make_intent("1002")), *(log.begin(make_intent(c)) for c in SUBJECTS[:8])
        )
        assert sealer.destroyed
        assert _cached(log, "1002") is not sealer
        old, _ = await log.reveal(first, reason="check", request_id="r", **PO)
        assert old["after"]["Email"] == "erased"
        for audit_id in ids:
            clear, _ = await log.reveal(audit_id, reason="check", request_id="r", **PO)
            assert clear["after"]["Email"] == EMAIL_AFTER
        live = await sql(
            store_url,
            "SELECT count(*) FROM audit_subject_key"
            " WHERE customer_id = '1002' AND wrapped IS NOT NULL",
        )
        assert live[0][0] == 1  # a new key; the erased one stays destroyed
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_a_failing_step_rolls_back_and_the_writer_goes_on(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, **keys)
    try:
        backend: Any = log._writer._committer._backend
        original = backend.chain

        async def broken(step: Any, *, durable: bool = True) -> None:
            def failing(head: Any) -> Any:
                yield from step(head)
                raise OSError("disk gone")  # after the step's queries, before the commit

            await original(failing, durable=durable)

        backend.chain = broken
        with pytest.raises(AuditUnavailable):
            await log.begin(make_intent("6001"))
        backend.chain = original
        await log.begin(make_intent("6001"))
        assert (await sql(store_url, "SELECT count(*) FROM audit_subject_key"))[0][0] == 1
        assert (await log.verify()).ok
    finally:
        await log.close()
