"""A group commit isolates an entry the store refuses: only that caller fails.

The audit log refuses what it knows the store cannot hold before an entry is queued
(tests/audit/test_storable.py). This is the second line: should a value the checks do
not know of reach PostgreSQL, its refusal (a data error) must not fail the other callers
of the same transaction. The up-front check is switched off here (named, not mocked
away: the real writer, the real database) so the store itself refuses.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from audit import InvalidAuditInput
from audit.batch import Pending
from audit.chain import GENESIS
from audit.checkpoint import Checkpoints
from audit.connect import connect_backend
from audit.entries import base_body
from audit.ids import uuid7
from audit.writer import ChainWriter
from tests.audit.conftest import reset_pg, sql

pytestmark = pytest.mark.postgres

# A NUL in a clear value is no longer among them: PostgreSQL's ``json`` type takes
# ``\u0000``; only the ``jsonb`` parse of the insert trigger refused it, and since 0006 the
# writer sends the query columns and nothing parses the body on insert. The up-front check
# refuses it (tests/audit/test_storable.py).
POISONS = {
    "nul in the customer id": "x\x00y",
    "index row over 2,704 bytes": os.urandom(3000).hex(),  # incompressible
}


def _entry(customer_id: str, *, note: str = "fine") -> Pending:
    body = base_body(
        uuid7(), actor="alice", roles=["editor"], system="keycom", customer_id=customer_id,
        purpose="customer_service", request_id="r", action="update", phase="outcome",
        after={"note": note},
    )  # fmt: skip
    return Pending(body, ("keycom", customer_id))


@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
async def test_a_refused_entry_fails_alone_and_the_rest_commit_in_order(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch, poison: str
) -> None:
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    monkeypatch.setattr("audit.writer.check_storable", lambda body, text: None)
    batches: list[int] = []
    backend = await connect_backend(pg_base_url)
    writer = ChainWriter(
        backend, master_key=os.urandom(32), head=(0, GENESIS, 0, None),
        checkpoints=Checkpoints(os.urandom(32), every=1000, seconds=60.0),
        on_batch=lambda n, _s: batches.append(n),
    )  # fmt: skip
    writer.start()
    try:
        entries = [_entry(f"c{i}") for i in range(40)]
        bad = _entry(poison)
        entries.insert(17, bad)
        results = await asyncio.gather(
            *(writer.append(p) for p in entries), return_exceptions=True
        )
        assert batches[0] == len(entries)  # one group commit was tried for all of them
        assert isinstance(results[17], InvalidAuditInput)
        good = [r for i, r in enumerate(results) if i != 17]
        assert all(isinstance(r, str) for r in good)
        rows = await sql(pg_base_url, "SELECT seq, audit_id, prev_hash, hash FROM audit_entry"
                                      " ORDER BY seq")  # fmt: skip
        assert [r[1] for r in rows] == good  # every other caller's entry, in order
        assert [int(r[0]) for r in rows] == list(range(1, 41))
        assert rows[0][2] == GENESIS
        assert all(rows[i][2] == rows[i - 1][3] for i in range(1, len(rows)))
        head = await sql(pg_base_url, "SELECT seq, hash FROM audit_head")
        assert (int(head[0][0]), head[0][1]) == (40, rows[-1][3])
        # the writer goes on
        assert isinstance(await writer.append(_entry("after")), str)
    finally:
        await writer.close()
        await backend.close()


async def test_a_refused_entry_in_the_first_of_two_batches_in_flight_fails_alone(
    pg_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 entries queued at once go as two batches in flight; the store refuses one of
    the first: the second, chained on a head that never came, is not written, and both
    go again the full way - every other entry commits, in the order it was queued."""
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    monkeypatch.setattr("audit.writer.check_storable", lambda body, text: None)
    batches: list[int] = []
    backend = await connect_backend(pg_base_url)
    writer = ChainWriter(
        backend, master_key=os.urandom(32), head=(0, GENESIS, 0, None),
        checkpoints=Checkpoints(os.urandom(32), every=1000, seconds=60.0),
        on_batch=lambda n, _s: batches.append(n),
    )  # fmt: skip
    writer.start()
    try:
        entries = [_entry(f"c{i}") for i in range(150)]
        entries[30] = _entry("x\x00y")
        results = await asyncio.gather(*(writer.append(p) for p in entries), return_exceptions=True)
        assert batches[:2] == [75, 75]  # two batches were in flight
        assert isinstance(results[30], InvalidAuditInput)
        good = [r for i, r in enumerate(results) if i != 30]
        assert all(isinstance(r, str) for r in good)
        rows = await sql(pg_base_url, "SELECT seq, audit_id, prev_hash, hash FROM audit_entry"
                                      " ORDER BY seq")  # fmt: skip
        assert [r[1] for r in rows] == good
        assert [int(r[0]) for r in rows] == list(range(1, 150))
        assert all(rows[i][2] == rows[i - 1][3] for i in range(1, len(rows)))
    finally:
        await writer.close()
        await backend.close()
