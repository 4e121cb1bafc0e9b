"""``bench/metric_values.py``: CPU per metric update for each value class (docs/
performance.md, "Two workers, the service side"). Shape only: no timing is asserted."""

from __future__ import annotations

from bench import metric_values


def test_each_kind_of_value_is_measured_in_a_process_of_its_own() -> None:
    for kind in metric_values.KINDS:
        found = metric_values.measure(kind, number=200, repeat=1)
        assert set(found) == {"inc", "observe"}
        assert all(us >= 0 for us in found.values())
