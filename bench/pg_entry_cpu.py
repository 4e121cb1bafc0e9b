"""PostgreSQL: the server's CPU per audit entry, and where it goes (issue 11).

Each variant gets a fresh scratch database (``pgcpu_<variant>``) built by the project's
migrations, then changes of the schema that remove one suspect (index groups, the
``json`` input check, the open-intent rows) or put back what migrations 0006 and 0008
removed (the trigger that parsed every inserted body, the whole indexes, the index of
``problem_code``). The chain writer's statement
(:func:`audit.pg_write.one_statement`, groups of ``--group`` entries: half intents that
open an intent row, half outcomes that close one; the entries with their query columns,
as the writer sends them) is replayed with realistic bodies on one connection, and the
CPU of that connection's server backend is read from ``/proc/<pid>/stat`` (utime +
stime) before and after: the database must run on this machine. Every variant runs
``--rounds`` times, interleaved; the median is reported.

    .venv/bin/python -m bench.pg_entry_cpu --entries 6000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg

from audit.backend import INSERT_ENTRY_COLUMNS, QUERY_COLUMNS
from audit.batch import DELETE_OPEN, INSERT_OPEN, UPDATE_HEAD
from audit.chain import query_values
from audit.migrate import upgrade
from audit.pg_write import one_statement

_TICK = os.sysconf("SC_CLK_TCK")
_DSN = "postgresql://postgres@127.0.0.1:5432"
_SECONDARY = {
    "subject/actor/outcome (text, seq)": (
        "ix_audit_entry_subject", "ix_audit_entry_actor", "ix_audit_entry_outcome",
    ),
    "time/intent/key": ("ix_audit_entry_time", "ix_audit_entry_intent", "ix_audit_entry_key"),
    "system (0009)": ("ix_audit_entry_system",),
    "unique audit_id": ("ux_audit_entry_audit_id",),
}  # fmt: skip
_ALL = tuple(i for group in _SECONDARY.values() for i in group)
_TEXT = ("ALTER TABLE audit_entry ALTER COLUMN body TYPE text",)
#: 0005's trigger: every inserted body parsed as jsonb, the columns set from it
_TRIGGER_0005 = (
    "CREATE TRIGGER audit_entry_query_columns_0005 BEFORE INSERT ON audit_entry"
    " FOR EACH ROW EXECUTE FUNCTION audit_entry_query_columns()",
)
_PARTIAL = {"ix_audit_entry_intent": "intent_id", "ix_audit_entry_outcome": "outcome, seq",
            "ix_audit_entry_key": "key_id"}  # fmt: skip
#: 0005's indexes: every row in them, NULL or not, and the one of ``problem_code`` (0008)
_WHOLE_0005 = (
    *(f"DROP INDEX {name}; CREATE INDEX {name} ON audit_entry ({columns})"
      for name, columns in _PARTIAL.items()),
    "CREATE INDEX ix_audit_entry_problem ON audit_entry (problem_code, seq)",
)  # fmt: skip


def _drop(indexes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"DROP INDEX {name}" for name in indexes)


#: name: (schema changes, body as text, open-intent rows written)
VARIANTS: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "as shipped (0009)": ((), False, True),
    "as 0005 (insert trigger and whole indexes)": (_TRIGGER_0005 + _WHOLE_0005, False, True),
    "0005's insert trigger only": (_TRIGGER_0005, False, True),
    "0005's whole indexes only": (_WHOLE_0005, False, True),
    **{f"no index {k}": (_drop(v), False, True) for k, v in _SECONDARY.items()},
    "no secondary index": (_drop(_ALL), False, True),
    "body text, not json": (_TEXT, True, True),
    "no open-intent rows": ((), False, False),
    "floor: none of these": (_drop(_ALL) + _TEXT, True, False),
}


def _body(audit_id: str, seq: int, intent_id: str | None) -> str:
    """An entry body shaped like the gateway's (keycom update: sealed sides)."""
    sealed = base64.b64encode(os.urandom(180)).decode()
    return json.dumps({
        "v": 2, "audit_id": audit_id, "time": f"2026-11-30T07:30:00.{seq % 10**6:06d}Z",
        "actor": f"agent-{seq % 7}", "roles": ["support"], "system": "keycom",
        "customer_id": f"cust-{seq % 500:05d}", "purpose": "support-ticket",
        "request_id": uuid.uuid4().hex, "action": "update",
        "phase": "outcome" if intent_id else "intent",
        "outcome": "ok" if intent_id else None, "problem_code": None,
        "upstream_status": 200 if intent_id else None,
        "upstream_latency_ms": 3.25 if intent_id else None, "intent_id": intent_id,
        "changed": ["email", "phone"], "before": {}, "after": {"plan": "pro"},
        "policy_version": "2026-11-01", "reason": None, "target_id": None,
        "key_id": f"k-{seq % 500}", "sealed": {"before": sealed, "after": sealed},
    }, separators=(",", ":"))  # fmt: skip


def _made(statements: list[Any]) -> tuple[str, list[Any]]:
    made = one_statement(statements)
    if made is None:
        raise RuntimeError("a group that is not one statement")
    return made


def _groups(n: int, group: int, intents: bool) -> list[list[Any]]:
    """The statements of ``n`` entries in groups of ``group``: intents, then outcomes."""
    out: list[list[Any]] = []
    opened: list[str] = []
    prev = "0" * 64
    seq = 0
    while seq < n:
        entries, opens, closes = [], [], []
        ready, opened = opened, []  # a group closes intents of earlier groups only
        for _ in range(group):
            seq += 1
            audit_id = str(uuid.uuid4())
            if seq % 2 or not ready:
                opens.append((audit_id, seq, "2026-11-30T07:30:00Z"))
                opened.append(audit_id)
                body = _body(audit_id, seq, None)
            else:
                intent = ready.pop(0)
                closes.append((intent,))
                body = _body(audit_id, seq, intent)
            h = hashlib.sha256((prev + body).encode()).hexdigest()
            entries.append((seq, body, prev, h, *query_values(json.loads(body))))
            prev = h
        opened = ready + opened
        statements = [(UPDATE_HEAD, [(seq, prev, 0, None)]), (INSERT_ENTRY_COLUMNS, entries)]
        if intents:
            statements += [(INSERT_OPEN, opens), (DELETE_OPEN, closes)]
        out.append(statements)
    return out


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _run(dsn: str, name: str, variant: str, n: int, group: int) -> float:
    """Seconds of backend CPU per entry for ``variant`` in a fresh scratch database."""
    changes, text_body, intents = VARIANTS[variant]
    admin = await asyncpg.connect(dsn, database="test")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    await upgrade(f"postgresql+asyncpg://{dsn.split('://', 1)[1]}/{name}")
    conn = await asyncpg.connect(dsn, database=name)
    try:
        for sql in changes:
            await conn.execute(sql)
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        made = []  # (sql, args) made beforehand: the client's work stays out of the loop
        for statements in _groups(n, group, intents):
            sql, args = _made(statements)
            made.append((sql.replace("::json[]", "::text[]") if text_body else sql, args))
        for sql, args in made[:20]:  # plans cached, catalogs read
            await conn.fetchval(sql, *args)
        before = _cpu(pid)
        for sql, args in made[20:]:
            await conn.fetchval(sql, *args)
        used = _cpu(pid) - before
        batches = made
        filled = await conn.fetchval("SELECT count(customer_id) FROM audit_entry")
        if filled != n:
            raise RuntimeError(f"{variant}: {filled} of {n} rows have their query columns")
        differ = " OR ".join(f"{c} IS DISTINCT FROM body::jsonb ->> '{c}'" for c in QUERY_COLUMNS)
        if await conn.fetchval(f"SELECT count(*) FROM audit_entry WHERE {differ}"):  # noqa: S608
            raise RuntimeError(f"{variant}: query columns that disagree with the body")
        return used / (len(batches[20:]) * group)
    finally:
        await conn.close()
        admin = await asyncpg.connect(dsn, database="test")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def real_log(
    changes: int, at_once: int = 32, dsn: str = _DSN, customers: int = 100
) -> dict[str, float]:
    """Server CPU per entry of the real path: ``changes`` keycom changes (lock, intent,
    outcome, unlock: :func:`bench.pg_trips._change`; ``customers`` customers - as many
    as changes: each a new subject, its key looked up and made in the full way, as in a
    fresh store under the gateway bench - ``at_once`` at a time)
    through :class:`audit.AuditLog`, every backend of the scratch database read before and
    after; per backend kind (the busiest is the chain writer)."""
    from audit import AuditLog
    from bench.pg_trips import _change

    name = f"pgcpu_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn, database="test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await upgrade(f"postgresql+asyncpg://{dsn.split('://', 1)[1]}/{name}")
        log = await AuditLog.open(
            f"postgresql+asyncpg://{dsn.split('://', 1)[1]}/{name}",
            master_key=os.urandom(32), signing_key=os.urandom(32),
        )  # fmt: skip
        try:
            await _change(log, "warm", 0)
            pids = [r[0] for r in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]  # fmt: skip
            before = {pid: _cpu(pid) for pid in pids}
            queue = [(n, f"cust-{n % customers}") for n in range(changes)]

            async def worker() -> None:
                while queue:
                    n, customer = queue.pop()
                    await _change(log, customer, n)

            await asyncio.gather(*(worker() for _ in range(at_once)))
            await log.settle()
            used = sorted((_cpu(pid) - before[pid] for pid in pids), reverse=True)
        finally:
            await log.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    entries = 2 * changes
    return {"all backends": sum(used) / entries, "busiest backend": used[0] / entries,
            "backends": len(used)}  # fmt: skip


async def measure(
    names: list[str], *, entries: int, rounds: int, group: int = 15, dsn: str = _DSN
) -> dict[str, list[float]]:
    """Seconds of backend CPU per entry, ``rounds`` runs of each variant interleaved."""
    results: dict[str, list[float]] = {v: [] for v in names}
    for _ in range(rounds):
        for variant in names:
            name = f"pgcpu_{uuid.uuid4().hex[:10]}"
            results[variant].append(await _run(dsn, name, variant, entries, group))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=_DSN)
    parser.add_argument("--entries", type=int, default=6000)
    parser.add_argument("--group", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--real", type=int, default=0, help="also N changes via AuditLog")
    parser.add_argument("--customers", type=int, default=100, help="of the --real changes")
    opts = parser.parse_args()
    names = [v for v in VARIANTS if not opts.only or v in opts.only.split(",")]
    results = await measure(
        names, entries=opts.entries, rounds=opts.rounds, group=opts.group, dsn=opts.dsn
    )
    if opts.real:
        real = await real_log(opts.real, customers=opts.customers)
        print(
            f"real AuditLog, {opts.real} keycom changes of {opts.customers} customers 32 at"
            f" once, {real['backends']:.0f}"
            f" backends: all {real['all backends'] * 1e6:.1f} us/entry, busiest"
            f" {real['busiest backend'] * 1e6:.1f} us/entry"
        )
    base = statistics.median(results[names[0]])
    print(
        f"load average {os.getloadavg()[0]:.2f}; {opts.entries} entries, groups of "
        f"{opts.group}, {opts.rounds} rounds; server backend CPU per entry (median)"
    )
    print(f"{'variant':46} {'us/entry':>9} {'vs first':>9}   runs")
    for variant, runs in results.items():
        med = statistics.median(runs)
        print(
            f"{variant:46} {med * 1e6:9.1f} {med / base:9.2f}   "
            + " ".join(f"{r * 1e6:.0f}" for r in runs)
        )


if __name__ == "__main__":
    start = time.monotonic()
    asyncio.run(main())
    print(f"({time.monotonic() - start:.0f} s)")
