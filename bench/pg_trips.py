"""Round trips to PostgreSQL and CPU per change of the gateway's audit path (issue 11).

Run: ``python -m bench.pg_trips [--changes 600]`` (about 20 s). Each change is what the
gateway does around a forward: hold the customer's lock (``subject_lock``), append the
intent (``begin``), append the outcome (``finish(durable=False)``), release the lock -
one change at a time and 32 at once, each customer's first change (its data key made in
the append) and a second one (the key cached). A round trip is one call of an asyncpg
connection's ``execute``, ``executemany``, ``fetch``, ``fetchrow`` or ``fetchval`` (each
sends its messages and waits for the server's answer; ``executemany`` pipelines its
rows); counted by wrapping those methods while it runs, so the count is the same on a
busy machine (and checked by ``tests/bench/test_pg_trips.py``).
CPU: user + system of this process (the audit path only, no HTTP), per change.

A scratch database is created at 127.0.0.1:5432 and dropped. To count another version,
run this file with that version's ``audit`` package first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from asyncpg.connection import Connection

from audit import AuditLog, Intent, Outcome, upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
CALLS: Counter[str] = Counter()
_METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


@contextmanager
def _counting() -> Iterator[None]:
    """Count the calls of asyncpg's query methods (every connection) while inside."""
    originals = {name: getattr(Connection, name) for name in _METHODS}

    def counted(name: str) -> Callable[..., Awaitable[Any]]:
        original = originals[name]

        async def call(self: Connection, *args: Any, **kwargs: Any) -> Any:
            CALLS[name] += 1
            return await original(self, *args, **kwargs)

        return call

    for name in _METHODS:
        setattr(Connection, name, counted(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(Connection, name, original)


def _intent(customer: str, n: int) -> Intent:
    return Intent(
        actor="bench", roles=("editor",), system="keycom", customer_id=customer,
        purpose="customer_service", request_id=f"trips-{n}", action="update",
        changed=("Email", "Note"), before={"Email": "a@example.org", "Note": "old"},
        after={"Email": "b@example.org", "Note": "new"},
        protected={"Email": "personal", "Note": "internal"}, policy_version="sha256:bench",
    )  # fmt: skip


async def _change(log: AuditLog, customer: str, n: int) -> None:
    async with log.subject_lock("keycom", customer):
        intent_id = await log.begin(_intent(customer, n))
        await log.finish(intent_id, Outcome("applied", upstream_status=200), durable=False)


async def _run(log: AuditLog, customers: list[str], at_once: int) -> dict[str, float]:
    queue = list(enumerate(customers))
    CALLS.clear()
    cpu, started = time.process_time(), time.perf_counter()

    async def worker() -> None:
        while queue:
            n, customer = queue.pop()
            await _change(log, customer, n)

    await asyncio.gather(*(worker() for _ in range(at_once)))
    await log.settle()  # the last lazy outcomes written too
    cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    changes = len(customers)
    return {
        "trips": sum(CALLS.values()) / changes,
        "cpu_us": 1e6 * cpu / changes,
        "per_s": changes / wall,
    }


async def measure(changes: int) -> list[dict[str, Any]]:
    """One row per (changes at once, customers new or known): round trips, CPU µs and
    changes per second, per change."""
    name = f"pg_trips_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    rows: list[dict[str, Any]] = []
    try:
        await upgrade(url)
        log = await AuditLog.open(url, master_key=os.urandom(32), signing_key=os.urandom(32))
        try:
            with _counting():
                for at_once in (1, 32):
                    fresh = [f"{at_once}-{n}" for n in range(changes)]
                    for label in ("new", "known"):
                        row = await _run(log, fresh, at_once)
                        rows.append({"at_once": at_once, "customers": label, **row})
        finally:
            await log.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return rows


async def main(changes: int) -> None:
    load = os.getloadavg()[0]
    rows = await measure(changes)
    print(f"| changes at once | customers | round trips / change | CPU µs / change"
          f" | changes / s |  (load {load:.2f})")  # fmt: skip
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['at_once']} | {row['customers']} | {row['trips']:.2f}"
              f" | {row['cpu_us']:.0f} | {row['per_s']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=600)
    asyncio.run(main(parser.parse_args().changes))
