"""A small run of ``python -m bench.rss`` (docs/performance.md, "Workers (issue 11)"):
two workers, a few changes and connections; the JSON's shape and that every connection
was held by a worker. No memory figure is asserted: figures live in the docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rss_reports_every_process_and_who_holds_the_connections(tmp_path: Path) -> None:
    out = tmp_path / "rss.json"
    done = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.rss", "--workers", "2", "--connections", "24",
         "--changes", "8", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["changes"] == {"200": 8} and result["connection_answers"] == {"200": 24}
    roles = sorted(p["role"] for p in result["processes"])
    assert roles == ["supervisor", "worker", "worker"]
    workers = [p for p in result["processes"] if p["role"] == "worker"]
    assert sum(p["connections"] for p in workers) == 24
    for process in result["processes"]:
        for key in ("idle", "with_connections"):
            assert set(process[key]) == {"rss_mb", "rss_anon_mb", "uss_mb", "pss_mb"}
            assert process[key]["rss_mb"] > 0
