"""``bench/entry_row_cpu.py`` (docs/performance.md, "`audit_entry`'s indexes"). Shape
only: timings are not asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_ab_run_replays_every_row_on_both_sides_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.entry_row_cpu", "--a", ".", "--b", ".", "--rounds", "1",
         "--changes", "128", "--drop", "ix_audit_entry_actor"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["round 1 A", "round 1 B"]
    assert all("(256 rows)" in line for line in lines[:2])  # 128 changes, two entries each
    assert lines[-1].startswith("CPU per row: A median")
    assert list(tmp_path.iterdir()) == []  # the stores removed afterwards
