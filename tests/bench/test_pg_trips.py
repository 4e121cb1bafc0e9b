"""``bench/pg_trips.py``: round trips to PostgreSQL per change of the audit path. The
counts do not depend on the machine, so they are asserted: a change that adds a round
trip to the lock, the intent or the outcome fails here (timings are not asserted)."""

from __future__ import annotations

from typing import Any

import pytest
from asyncpg.connection import Connection

import audit.writer
from bench import pg_trips

CHANGES = 6


def _whole(rows: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    """Round trips of each run in whole trips: per-change means are fractions, and
    41/6 - 17/6 is not 4 in floating point."""
    return {(row["at_once"], row["customers"]): round(row["trips"] * CHANGES) for row in rows}


@pytest.mark.postgres
async def test_round_trips_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    before = Connection.execute
    # outcomes that never linger (audit.writer.LINGER 0: each goes alone on the next turn
    # of the loop, before the next change's lock comes back), then outcomes that always
    # do (1 s: each joins the next change's intent, the last goes alone): neither count
    # depends on the 5 ms default timer against the next change, which made this test
    # fail once in a loaded make test (42 and 16 trips where 41 and 16 are usual).
    # Measured: 45 and 21 trips for 6 changes alone, 40 and 16 lingering, the same under
    # two busy loops on both cores
    monkeypatch.setattr(audit.writer, "LINGER", 0.0)
    alone = _whole(await pg_trips.measure(changes=CHANGES))
    monkeypatch.setattr(audit.writer, "LINGER", 1.0)
    rows = await pg_trips.measure(changes=CHANGES)
    lingering = _whole(rows)
    # one at a time, every outcome alone: lock; intent: BEGIN, the head, the key lookup
    # with the master-key check, the write, COMMIT (a new key) or the write alone (sent on
    # the expected head); the outcome; unlock. The unlock is sent, not waited for
    # (audit/pg_lock_sessions.py): when the next change's customer is on the same lock
    # session its lock goes in the same statement, so a change takes 7 or 8 (3 or 4)
    new, known = alone[(1, "new")], alone[(1, "known")]
    assert 7 * CHANGES <= new <= 8 * CHANGES
    assert 3 * CHANGES <= known <= 4 * CHANGES
    # a new key: the full way's four more per change (the same customers, known the
    # second time, so the same lock sessions; one trip of slack for an unlock's timing)
    assert 4 * CHANGES - 1 <= new - known <= 4 * CHANGES + 1
    # lingering: an outcome queued alone with the writer idle goes in the next change's
    # intent's write (audit/writer.py), one trip fewer for each but the last (one trip of
    # slack either way for an unlock's timing)
    for kind in ("new", "known"):
        saved = alone[(1, kind)] - lingering[(1, kind)]
        assert CHANGES - 2 <= saved <= CHANGES, (kind, saved)
    # at once: the appends shared by batches, the locks and unlocks by lock statements
    # (audit/pg_lock_sessions.py), so below the 4 of a known customer one at a time
    for whole in (lingering, alone):
        assert 0 < whole[(32, "known")] <= whole[(32, "new")] < 4 * CHANGES
    assert all(row["cpu_us"] > 0 and row["per_s"] > 0 for row in rows)
    assert Connection.execute is before  # the counting is undone
