"""The chain transactions' connections kept between batches (audit/store_pg.py, ``_Kept``),
on the real server: a committed batch's connection serves the next batch, anything else
goes back to the pool, a kept connection that ended is not used, the pool always keeps
one for the reads, and closing the store gives the kept ones back first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from audit.store_pg import PgBackend, _usable
from tests.audit.conftest import reset_pg
from tests.audit.test_pg_write import _append


@pytest.fixture
async def opened(pg_base_url: str | None) -> AsyncIterator[Callable[..., object]]:
    if pg_base_url is None:
        pytest.skip("!!! POSTGRESQL AT 127.0.0.1:5432 IS NOT REACHABLE !!!")
    await reset_pg(pg_base_url)
    dsn = pg_base_url.replace("postgresql+asyncpg", "postgresql")
    made: list[PgBackend] = []

    async def open_backend(max_size: int = 6) -> PgBackend:
        backend = await PgBackend.connect(dsn, max_size=max_size)
        made.append(backend)
        return backend

    try:
        yield open_backend
    finally:
        for backend in made:
            await asyncio.wait_for(backend.close(), 10)


async def _pid_of_next_batch(backend: PgBackend) -> int:
    tx = await backend.chain_tx()
    pid = (await tx.fetchall("SELECT pg_backend_pid()"))[0][0]
    seq, head_hash = int(tx.head[0]), str(tx.head[1])
    statements, _, _ = _append(seq + 1, head_hash)
    await tx.commit(statements)
    return int(pid)


@pytest.mark.postgres
async def test_a_committed_batch_keeps_its_connection_for_the_next(opened) -> None:
    backend = await opened()
    pool = backend._pool
    first = await _pid_of_next_batch(backend)
    assert pool.get_size() - pool.get_idle_size() == 1  # still lent out: not given back
    assert await _pid_of_next_batch(backend) == first
    assert pool.get_size() - pool.get_idle_size() == 1
    # a batch sent on the expected head keeps it too
    head = (await backend.fetchall("SELECT seq, hash FROM audit_head WHERE id = 1"))[0]
    statements, _, _ = _append(int(head[0]) + 1, str(head[1]))
    assert await backend.append_if_head((int(head[0]), str(head[1])), statements, durable=True)
    assert await _pid_of_next_batch(backend) == first


@pytest.mark.postgres
async def test_a_rolled_back_transaction_gives_its_connection_back(opened) -> None:
    backend = await opened()
    await _pid_of_next_batch(backend)  # one kept
    tx = await backend.chain_tx()
    idle = backend._pool.get_idle_size()
    await tx.rollback()
    assert backend._pool.get_idle_size() == idle + 1  # back in the pool, not kept
    assert (await backend.fetchall("SELECT seq FROM audit_head WHERE id = 1"))[0][0] == 1


@pytest.mark.postgres
async def test_a_kept_connection_that_ended_is_not_used(opened, pg_base_url: str) -> None:
    backend = await opened()
    first = await _pid_of_next_batch(backend)
    admin = await asyncpg.connect(pg_base_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    for _ in range(100):  # until the driver has heard of it (and taken it back)
        if not _usable(backend._kept._idle[0]):
            break
        await asyncio.sleep(0.02)
    assert not _usable(backend._kept._idle[0])
    assert await _pid_of_next_batch(backend) != first  # a fresh one, and the batch commits
    assert (await backend.fetchall("SELECT seq FROM audit_head WHERE id = 1"))[0][0] == 2


@pytest.mark.postgres
async def test_a_pool_of_one_keeps_nothing_so_reads_go_on(opened) -> None:
    backend = await opened(max_size=1)
    await _pid_of_next_batch(backend)
    # with the only connection kept, this read would wait for ever
    rows = await asyncio.wait_for(backend.fetchall("SELECT seq FROM audit_head WHERE id = 1"), 5)
    assert rows == [(1,)]


@pytest.mark.postgres
async def test_closing_gives_the_kept_connections_back_first(opened) -> None:
    backend = await opened()
    await _pid_of_next_batch(backend)
    assert backend._kept._idle
    # asyncpg's pool.close() waits for every connection lent out: kept ones included
    await asyncio.wait_for(backend.close(), 10)
    assert backend._pool._closed
