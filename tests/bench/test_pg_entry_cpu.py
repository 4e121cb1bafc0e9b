"""``bench/pg_entry_cpu.py``: the server's CPU per audit entry by schema variant. Timings
are not asserted; what is: every variant's statements run on a schema built by the
migrations, every row lands with its query columns, and they agree with the body for
every row (the bench raises otherwise), whether the writer sent them (0006) or 0005's
trigger set them."""

from __future__ import annotations

import pytest

from audit.backend import INSERT_ENTRY_COLUMNS
from audit.pg_write import one_statement
from bench import pg_entry_cpu


@pytest.mark.postgres
async def test_variants_run_and_columns_agree() -> None:
    names = [
        "as shipped (0009)", "as 0005 (insert trigger and whole indexes)", "floor: none of these"
    ]
    results = await pg_entry_cpu.measure(names, entries=450, rounds=1)
    assert set(results) == set(names)
    assert all(len(runs) == 1 and runs[0] >= 0 for runs in results.values())


def test_groups_close_only_earlier_intents() -> None:
    # an intent opened and closed in one group would not make one statement
    groups = pg_entry_cpu._groups(300, 15, True)
    assert sum(len(dict(g)[INSERT_ENTRY_COLUMNS]) for g in groups) == 300
    assert all(one_statement(g) is not None for g in groups)
