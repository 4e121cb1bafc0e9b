"""``bench/pg_load_cpu.py``: PostgreSQL's CPU per answer under the gateway's load, by
backend. Timings are not asserted; what is: the backends and the chain writer's
statements are told apart from the very statements the audit store sends (so a change
of those statements cannot silently turn the figures into "other"), and a short run
against the real gateway and PostgreSQL prints a figure for the chain writer."""

from __future__ import annotations

from audit.backend import HEAD_SQL, INSERT_ENTRY
from audit.batch import DELETE_OPEN, INSERT_OPEN, UPDATE_HEAD
from audit.keyring import _OTHER_KEK_ROW, _lookup
from audit.pg_lock_sessions import _BATCH
from audit.pg_write import one_statement
from audit.store_pg import numbered
from bench.pg_load_cpu import role, statement_kind

_ENTRY = (1, '{"a": 1}', "p", "h")
_GROUP = [
    (INSERT_ENTRY, [_ENTRY]),
    (INSERT_OPEN, [("id-1", 1, "t")]),
    (DELETE_OPEN, [("id-0",)]),
    (UPDATE_HEAD, [(1, "h", 0, None)]),
]


def test_the_store_s_statements_are_told_apart() -> None:
    conditional = one_statement(_GROUP, expected=(0, "g"), durable=False)
    in_transaction = one_statement(_GROUP)
    assert conditional is not None and in_transaction is not None
    lookup = numbered(_lookup([("keycom", "100001", None)])[0] + _OTHER_KEK_ROW)
    writer = {
        conditional[0]: "one statement, conditional",
        in_transaction[0]: "one statement, in a transaction",
        "BEGIN": "BEGIN",
        "COMMIT": "COMMIT",
        numbered(HEAD_SQL) + " FOR UPDATE": "head FOR UPDATE",
        lookup: "select audit_subject_key",
    }
    for sql, kind in writer.items():
        assert role(sql, "client backend") == "chain writer", sql
        assert statement_kind(sql) == kind, sql
    assert role(_BATCH, "client backend") == "lock session"
    assert role("SELECT pg_advisory_lock($1)", "client backend") == "dedicated lock"
    assert role("", "autovacuum worker") == "autovacuum worker"
