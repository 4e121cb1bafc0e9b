"""``bench/pg_entry_cpu.py``: the server's CPU per audit entry by schema variant. Timings
are not asserted; what is: every variant's statements run on a schema built by the
migrations, the rows land with their query columns filled exactly when a trigger or the
writer fills them, and the writer-sent columns (the proposed design without the trigger)
agree with the body for every row (the bench raises otherwise)."""

from __future__ import annotations

import pytest

from audit.backend import INSERT_ENTRY
from audit.pg_write import one_statement
from bench import pg_entry_cpu


@pytest.mark.postgres
async def test_variants_run_and_columns_agree() -> None:
    names = ["as shipped (0005)", pg_entry_cpu._CLIENT, "floor: none of these"]
    results = await pg_entry_cpu.measure(names, entries=450, rounds=1)
    assert set(results) == set(names)
    assert all(len(runs) == 1 and runs[0] >= 0 for runs in results.values())


def test_groups_close_only_earlier_intents() -> None:
    # an intent opened and closed in one group would not make one statement
    groups = pg_entry_cpu._groups(300, 15, True)
    assert sum(len(dict(g)[INSERT_ENTRY]) for g in groups) == 300
    assert all(one_statement(g) is not None for g in groups)
