"""Tamper evidence: the database is edited directly (SQL UPDATE/DELETE) and verify must
name the break. Checkpoints are signed with Ed25519 and checked with the public key."""

from __future__ import annotations

import asyncio

import pytest

from audit import AuditLog, Outcome
from audit.crypto import verify_checkpoint
from tests.audit.conftest import make_intent, sql


async def _fill(log: AuditLog, n: int) -> list[str]:
    return [
        await log.record(make_intent(str(2000 + i), request_id=f"r{i}"), Outcome("applied"))
        for i in range(n)
    ]


async def test_intact_log_verifies(audit_log: AuditLog) -> None:
    await _fill(audit_log, 5)
    report = await audit_log.verify()
    assert (report.ok, report.entries, report.first_bad, report.reason) == (True, 5, None, None)
    assert report.head == (await audit_log.head())[1]


async def test_changed_value_is_detected(audit_log: AuditLog, store_url: str) -> None:
    ids = await _fill(audit_log, 5)
    (body,) = (await sql(store_url, "SELECT body FROM audit_entry WHERE seq = 3"))[0]
    await sql(store_url, "UPDATE audit_entry SET body = $1 WHERE seq = 3",
              str(body).replace("new note", "NEW NOTE"))  # fmt: skip
    report = await audit_log.verify()
    assert not report.ok
    assert report.first_bad == ids[2]
    assert "hash" in (report.reason or "")


async def test_a_query_column_cannot_disagree_with_the_body(
    audit_log: AuditLog, store_url: str
) -> None:
    """SQLite's query columns are generated (a write to one is refused); on PostgreSQL
    a trigger sets them from the body on every update (the writer sends them on insert,
    migration 0006; verify checks them: tests/audit/test_pg_query_columns.py)."""
    await _fill(audit_log, 2)
    columns = "SELECT actor, customer_id FROM audit_entry WHERE seq = 1"
    try:
        await sql(store_url, "UPDATE audit_entry SET actor = 'mallory', customer_id = 'x'"
                             " WHERE seq = 1")  # fmt: skip
    except Exception as exc:  # SQLite refuses writes to generated columns
        assert "generated" in str(exc).lower() or "cannot" in str(exc).lower()
    assert await sql(store_url, columns) == [("alice", "2000")]
    assert (await audit_log.verify()).ok
    # the columns follow the body, which the hash covers
    (body,) = (await sql(store_url, "SELECT body FROM audit_entry WHERE seq = 1"))[0]
    forged = str(body).replace('"actor":"alice"', '"actor":"mallory"')
    await sql(store_url, "UPDATE audit_entry SET body = $1 WHERE seq = 1", forged)
    assert await sql(store_url, columns) == [("mallory", "2000")]
    assert not (await audit_log.verify()).ok


async def test_deleted_row_is_detected(audit_log: AuditLog, store_url: str) -> None:
    ids = await _fill(audit_log, 5)
    await sql(store_url, "DELETE FROM audit_entry WHERE seq = 2")
    report = await audit_log.verify()
    assert not report.ok
    assert report.first_bad == ids[2]
    assert "missing" in (report.reason or "")


async def test_reordered_rows_are_detected(audit_log: AuditLog, store_url: str) -> None:
    ids = await _fill(audit_log, 5)
    await sql(store_url, "UPDATE audit_entry SET seq = 100 WHERE seq = 2")
    await sql(store_url, "UPDATE audit_entry SET seq = 2 WHERE seq = 3")
    await sql(store_url, "UPDATE audit_entry SET seq = 3 WHERE seq = 100")
    report = await audit_log.verify()
    assert not report.ok
    assert report.first_bad == ids[2]  # the old seq 3 now stands at seq 2


async def test_truncated_tail_after_checkpoint_is_detected(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, checkpoint_every=4, **keys)
    try:
        await _fill(log, 9)  # checkpoints at 4 and 8
        checkpoints = await sql(store_url, "SELECT seq FROM audit_checkpoint ORDER BY seq")
        assert [int(c[0]) for c in checkpoints][:2] == [4, 8]
        # the attacker removes the tail and rewrites the head row to match
        await sql(store_url, "DELETE FROM audit_entry WHERE seq > 6")
        row = await sql(store_url, "SELECT hash FROM audit_entry WHERE seq = 6")
        await sql(store_url, "UPDATE audit_head SET seq = 6, hash = $1", row[0][0])
        report = await log.verify()
        assert not report.ok
        assert "truncated" in (report.reason or "")
    finally:
        await log.close()
    # closing did not sign the tampered head (it lies behind the last checkpoint)
    assert await sql(store_url, "SELECT seq FROM audit_checkpoint WHERE seq = 6") == []


async def test_truncated_tail_without_head_edit_is_detected(
    audit_log: AuditLog, store_url: str
) -> None:
    await _fill(audit_log, 4)
    await sql(store_url, "DELETE FROM audit_entry WHERE seq = 4")
    report = await audit_log.verify()
    assert not report.ok
    assert "head" in (report.reason or "")


async def test_forged_checkpoint_is_detected(store_url: str, keys: dict[str, bytes]) -> None:
    log = await AuditLog.open(store_url, checkpoint_every=2, **keys)
    try:
        await _fill(log, 2)
        (seq, hash_, time, key, sig), = await sql(
            store_url, "SELECT seq, hash, time, public_key, signature FROM audit_checkpoint"
        )  # fmt: skip
        assert key == log.public_key().hex()
        assert verify_checkpoint(log.public_key(), bytes.fromhex(sig), int(seq), hash_, time)
        await sql(store_url, "UPDATE audit_checkpoint SET time = '2000-01-01T00:00:00.000000Z'")
        report = await log.verify()
        assert not report.ok
        assert "signature" in (report.reason or "")
    finally:
        await log.close()


async def test_checkpoint_after_idle_seconds(store_url: str, keys: dict[str, bytes]) -> None:
    """No 1000 entries, but 0.2 s: the head is signed anyway, also when the log goes idle."""
    log = await AuditLog.open(store_url, checkpoint_every=1000, checkpoint_seconds=0.2, **keys)
    try:
        await _fill(log, 3)
        seqs: list[int] = []
        for _ in range(100):
            seqs = [int(r[0]) for r in await sql(store_url, "SELECT seq FROM audit_checkpoint")]
            if 3 in seqs:
                break
            await asyncio.sleep(0.05)
        assert 3 in seqs
        report = await log.verify()
        assert report.ok and report.checkpoints == len(seqs)
    finally:
        await log.close()


@pytest.mark.parametrize("move", ["to_another_entry", "to_another_side", "paths_changed"])
async def test_moved_ciphertext_does_not_open(
    audit_log: AuditLog, store_url: str, move: str
) -> None:
    ids = await _fill(audit_log, 2)
    from tests.audit.test_log import PO

    bodies = await sql(store_url, "SELECT seq, body FROM audit_entry ORDER BY seq")
    import json

    first, second = (json.loads(str(b)) for _, b in bodies)
    sealed = second["sealed"]
    assert sealed["after"]["paths"] == ["Email", "Phone"]  # one ciphertext per side
    if move == "to_another_entry":
        sealed["after"] = first["sealed"]["after"]
        second["key_id"] = first["key_id"]
    elif move == "to_another_side":
        sealed["after"]["box"] = sealed["before"]["box"]
    else:
        sealed["after"]["paths"] = ["Email"]
    moved = json.dumps(second, sort_keys=True, separators=(",", ":"))
    await sql(store_url, "UPDATE audit_entry SET body = $1 WHERE seq = 2", moved)
    clear, _ = await audit_log.reveal(ids[1], reason="inspect", request_id="r", **PO)
    assert clear["after"]["Email"] == "undecryptable"
    assert clear["after"]["Note"] == "new note"
    assert not (await audit_log.verify()).ok


async def test_verify_while_appending(store_url: str, keys: dict[str, bytes]) -> None:
    log = await AuditLog.open(store_url, checkpoint_every=7, **keys)
    try:
        writes = asyncio.gather(*(
            log.record(make_intent(str(i % 9), request_id=f"r{i}"), Outcome("applied"))
            for i in range(400)
        ))  # fmt: skip
        reports = [await log.verify() for _ in range(3)]
        await writes
        reports.append(await log.verify())
        assert [r.ok for r in reports] == [True] * 4
        assert reports[-1].entries == 400
    finally:
        await log.close()
