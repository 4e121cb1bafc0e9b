"""``bench/sync_floor.py``: one durable commit per store, one at a time (the floor of the
gateway's added latency, docs/performance.md). Shape only: timings are not asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import sync_floor


def test_each_store_reports_its_commits_and_percentiles(tmp_path: Path) -> None:
    floors = sync_floor.measure(["sqlite", "postgres"], tmp_path, count=5)
    assert set(floors) == {"sqlite", "postgres"}
    for floor in floors.values():
        assert floor["commits"] == 5
        assert 0 < floor["p50_ms"] <= floor["p99_ms"]
    assert (tmp_path / "sync-floor.db").exists()  # a real file, in the folder given


def test_an_unknown_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown store"):
        sync_floor.measure(["mysql"], tmp_path)
