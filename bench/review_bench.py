"""The audit review's latency on a large log: the queries of ``/v1/audit``,
``/v1/audit/changes`` and the trends, each checkout in turn.

    python -m bench.review_bench --a DIR --b DIR [--stores sqlite,postgres]
        [--entries 40000,400000] [--repeat 15] [--rounds 1]

Per store and size, a child process per side (``PYTHONPATH=DIR``: that checkout's
migrations and review code) migrates a fresh store (a SQLite file, or a PostgreSQL
database of its own on the shared server, dropped afterwards) and fills it with
``--entries`` entries written straight into ``audit_entry`` (not chained: the review
never verifies) - changes (intent and outcome) and refusals over four systems of skewed
frequency (:data:`SYSTEMS`: a common one, two others, a rare one; spread over the whole
log), 5,000 customers per system, 120 days - then times each query of :data:`QUERIES`
(``--repeat`` times, the median, ms, one page of 50). Printed: a line per query with A,
B and B/A. Not a test assertion (``tests/audit/test_review_bench.py`` runs it small).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

#: system: its share of the entries
SYSTEMS = {"keycom": 0.70, "billbee": 0.25, "shopwave": 0.049, "legacy": 0.001}
COMMON, RARE = "keycom", "legacy"
CUSTOMERS = 5000
DAYS = 120
_END = datetime(2026, 6, 1, tzinfo=UTC)


def _body(
    phase: str, system: str, customer: str, when: datetime, audit_id: str,
    intent_id: str | None, outcome: str | None,
) -> str:
    return json.dumps({
        "action": "update", "actor": "bench", "after": {"Note": "b"}, "audit_id": audit_id,
        "before": {"Note": "a"}, "changed": ["Email", "Note"], "customer_id": customer,
        "intent_id": intent_id, "key_id": None, "outcome": outcome, "phase": phase,
        "policy_version": "sha256:bench",
        "problem_code": "forbidden_field" if outcome == "rejected" else None,
        "purpose": "customer_service", "reason": None, "request_id": "bench",
        "roles": ["editor"], "system": system, "target_id": None,
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "upstream_latency_ms": None,
        "upstream_status": 200 if outcome == "applied" else None, "v": 2,
    }, separators=(",", ":"), sort_keys=True)  # fmt: skip


def rows(entries: int, seed: int = 11) -> list[tuple[int, str, str, str]]:
    """``entries`` rows (seq, body, prev_hash, hash): 4 in 5 events a change (two
    entries), else a refusal; the systems by :data:`SYSTEMS`, time rising over
    :data:`DAYS` days to :data:`_END`."""
    rnd = random.Random(seed)
    names, weights = list(SYSTEMS), list(SYSTEMS.values())
    out: list[tuple[int, str, str, str]] = []
    step = timedelta(days=DAYS) / entries
    while len(out) < entries:
        seq = len(out) + 1
        when = _END - (entries - seq) * step
        system = rnd.choices(names, weights)[0]
        customer = str(rnd.randrange(CUSTOMERS))
        first = str(uuid.UUID(int=rnd.getrandbits(128)))
        if rnd.random() < 0.8 and len(out) + 2 <= entries:
            out.append((seq, _body("intent", system, customer, when, first, None, None), "", ""))
            second = str(uuid.UUID(int=rnd.getrandbits(128)))
            body = _body("outcome", system, customer, when + step / 2, second, first, "applied")
            out.append((seq + 1, body, "", ""))
        else:
            body = _body("outcome", system, customer, when, first, None, "rejected")
            out.append((seq, body, "", ""))
    return out


async def _insert(url: str, data: list[tuple[int, str, str, str]]) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        con = sqlite3.connect(url.split(":///", 1)[1])
        try:
            con.executemany(
                "INSERT INTO audit_entry (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)", data
            )
            con.commit()
        finally:
            con.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:  # without the query columns: the trigger of 0006 sets them from the body
        await conn.copy_records_to_table(
            "audit_entry", records=data, columns=["seq", "body", "prev_hash", "hash"]
        )
        await conn.execute("ANALYZE audit_entry")  # as autovacuum would have by then
    finally:
        await conn.close()


Query = Callable[[Any, Any], Awaitable[object]]
_DAY = (_END - timedelta(days=1)).date()
_MONTH: tuple[date, date] = (_DAY - timedelta(days=29), _DAY)

#: name: (reader, review) -> the query; "scope" is a reader's scope (``systems``)
QUERIES: dict[str, Query] = {
    "list: all": lambda rd, rv: rd.query(),
    "list: scope common": lambda rd, rv: rd.query(systems={COMMON}),
    "list: scope rare": lambda rd, rv: rd.query(systems={RARE}),
    "list: scope common+billbee": lambda rd, rv: rd.query(systems={COMMON, "billbee"}),
    "list: scope rare+shopwave": lambda rd, rv: rd.query(systems={RARE, "shopwave"}),
    "list: customer, no system": lambda rd, rv: rd.query(customer_id="17"),
    "list: customer, scope 2": lambda rd, rv: rd.query(customer_id="17",
                                                       systems={COMMON, RARE}),
    "list: system and customer": lambda rd, rv: rd.query(system=COMMON, customer_id="17"),
    "changes: all": lambda rd, rv: rv.changes(),
    "changes: scope common": lambda rd, rv: rv.changes(systems={COMMON}),
    "changes: scope rare": lambda rd, rv: rv.changes(systems={RARE}),
    "changes: scope common+billbee": lambda rd, rv: rv.changes(systems={COMMON, "billbee"}),
    "changes: scope rare+shopwave": lambda rd, rv: rv.changes(systems={RARE, "shopwave"}),
    "changes: customer, no system": lambda rd, rv: rv.changes(customer_id="17"),
    "trends 30 d: all": lambda rd, rv: rv.trends(*_MONTH),
    "trends 30 d: scope common": lambda rd, rv: rv.trends(*_MONTH, systems={COMMON}),
    "trends 30 d: scope rare": lambda rd, rv: rv.trends(*_MONTH, systems={RARE}),
}  # fmt: skip


async def measure(url: str, entries: int, repeat: int) -> dict[str, float]:
    """Fill the (migrated, empty) store at ``url``; each query's median ms."""
    from audit.connect import connect_backend
    from audit.reader import Reader
    from audit.review import Review

    started = time.perf_counter()
    await _insert(url, rows(entries))
    result: dict[str, float] = {"fill_s": time.perf_counter() - started}
    backend = await connect_backend(url)
    try:
        reader = Reader(backend, master_key=b"\0" * 32, public_key=b"\0" * 32)
        review = Review(backend)
        for name, query in QUERIES.items():
            await query(reader, review)  # warm: the pages in the cache, the statement
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                await query(reader, review)
                times.append(1000 * (time.perf_counter() - t0))
            result[name] = statistics.median(times)
    finally:
        await backend.close()
    result["load"] = os.getloadavg()[0]
    return result


def child(store: str, entries: int, repeat: int) -> dict[str, float]:
    from audit import upgrade
    from bench.procs import audit_store

    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp, audit_store(
        store, Path(tmp)
    ) as url:
        asyncio.run(upgrade(url))
        return asyncio.run(measure(url, entries, repeat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, help="checkout B (after)")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--entries", default="40000,400000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.stores, int(args.entries), args.repeat)))
        return 0
    if args.a is None or args.b is None:
        parser.error("--a and --b are required")
    from bench.procs import child_on  # here: the child runs another checkout's code

    for store in args.stores.split(","):
        for entries in (int(n) for n in args.entries.split(",")):
            got: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
            for _ in range(args.rounds):
                for side, checkout in (("A", args.a), ("B", args.b)):
                    got[side].append(child_on(checkout, __file__, "--stores", store,
                                              "--entries", str(entries),
                                              "--repeat", str(args.repeat)))  # fmt: skip
            a = {k: statistics.median(r[k] for r in got["A"]) for k in got["A"][0]}
            b = {k: statistics.median(r[k] for r in got["B"]) for k in got["B"][0]}
            print(f"\n{store}, {entries:,} entries (fill A {a['fill_s']:.1f} s, B "
                  f"{b['fill_s']:.1f} s; load {a['load']:.2f} / {b['load']:.2f})")  # fmt: skip
            print(f"{'query':32} {'A ms':>9} {'B ms':>9} {'B/A':>7}")
            for name in QUERIES:
                ratio = b[name] / a[name] if a[name] else float("nan")
                print(f"{name:32} {a[name]:9.3f} {b[name]:9.3f} {ratio:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
