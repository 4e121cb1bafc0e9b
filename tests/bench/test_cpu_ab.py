"""``python -m bench.cpu_ab`` (docs/performance.md, "CPU per change"): the order of its
slices. With A always first, A's first slice read high in all 24 runs of the i11-edge
session, ~2 % in B's favour; the rounds now alternate A B / B A and the first
``--settle`` rounds are not counted. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cpu_ab import rounds

ROOT = Path(__file__).resolve().parents[2]


def test_the_sides_alternate_which_runs_first() -> None:
    orders = [order for _, counted, order in rounds(6, 0) if counted]
    assert orders == [("A", "B"), ("B", "A")] * 3
    firsts = [order[0] for order in orders]
    assert firsts.count("A") == firsts.count("B")


def test_the_settling_rounds_run_first_and_are_not_counted() -> None:
    plan = rounds(4, 1)
    assert [number for number, _, _ in plan] == [1, 2, 3, 4, 5]
    assert [counted for _, counted, _ in plan] == [False, True, True, True, True]
    assert sum(counted for _, counted, _ in rounds(8, 2)) == 8
    assert not any(counted for _, counted, _ in rounds(0, 3))


def test_a_short_run_prints_the_settling_slices_apart_and_a_ratio() -> None:
    done = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.cpu_ab", "--a", str(ROOT), "--b", str(ROOT),
         "--slices", "1", "--seconds", "1", "--settle", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    settling = [line for line in lines if "settling, not counted" in line]
    assert [line.split(":")[0] for line in settling] == [
        "slice 1 A (settling, not counted)", "slice 1 B (settling, not counted)"]
    counted = [line.split(":")[0] for line in lines
               if line.startswith("slice ") and "settling" not in line]
    assert counted == ["slice 2 B", "slice 2 A"]  # the second round: B first
    assert all("'200'" in line for line in lines if line.startswith("slice "))
    assert lines[-1].startswith("B/A median ")
