"""``python -m bench.latency_ab`` (docs/performance.md, "One change at a time: the
critical path"): two checkouts - here this one twice - and the reference, interleaved;
every answer must be an applied change, and the result has the documented shape. No
timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_interleaved_run_checks_its_answers_and_reports_each_server() -> None:
    done = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.latency_ab", "--a", str(ROOT), "--b", str(ROOT),
         "--system", "billbee", "--changes", "20", "--warmup", "10", "--customers", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert (result["system"], result["store"], result["changes"]) == ("billbee", "sqlite", 20)
    assert 1 <= result["customers"] <= 3  # --customers: only these are changed
    for server in ("reference", "A", "B"):
        assert set(result[server]) == {"p50", "p90", "p99"}
    assert set(result["added_A"]) == set(result["added_B"]) == {"p50", "p90", "p99"}
    assert "reference" not in {k.removeprefix("added_") for k in result if k.startswith("added_")}
