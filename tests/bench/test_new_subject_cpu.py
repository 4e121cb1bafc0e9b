"""``bench/new_subject_cpu.py`` (docs/performance.md, "A new subject's key without the
full way"). Shape only: timings are not asserted; the counts of each way are, since they
do not depend on the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _child(customers: str, tmp: Path) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603 - this interpreter, a bench module
        [sys.executable, "-m", "bench.new_subject_cpu", "--child", "--changes", "64",
         "--tasks", "4", "--customers", customers],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_new_subjects_go_the_full_way_and_known_ones_are_sent(tmp_path: Path) -> None:
    new = _child("new", tmp_path)
    # every batch holds a subject whose key is made in it: the full way (its outcomes
    # go with the next batch of intents, the last ones may be sent)
    assert new["full"] >= 1 and new["full"] >= new["sent"]
    known = _child("known", tmp_path)
    assert known["full"] == 0 and known["sent"] >= 1  # every key cached in the warm-up
    for got in (new, known):
        assert got["loop_us"] > 0 and got["process_us"] > 0
        assert got["per_second"] > 0
    assert list(tmp_path.iterdir()) == []  # the stores removed afterwards
