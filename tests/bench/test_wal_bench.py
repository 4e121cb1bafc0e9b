"""``bench/wal_bench.py`` (docs/performance.md, "WAL checkpoints off the commit path").
Shape only: timings are not asserted. A subprocess, as the bench times the store's
commits by wrapping its writer method for the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, tmp: Path | None = None) -> dict[str, object]:
    env = None if tmp is None else {**os.environ, "TMPDIR": str(tmp)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.wal_bench", "--count", "300", "--prefill", "64", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True, env=env,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_in_commit_checkpoints_are_seen_in_commits() -> None:
    """SQLite's default: the commits that cross 1,000 pages ran a checkpoint."""
    result = _run("--in-commit")
    assert result["checkpoints"] == "in-commit"
    assert isinstance(result["commits"], int) and result["commits"] >= 300
    assert isinstance(result["commits_checkpointed"], int) and result["commits_checkpointed"] > 0


def test_the_background_mode_reports_the_same_figures(tmp_path: Path) -> None:
    result = _run(tmp=tmp_path)
    assert list(tmp_path.iterdir()) == []  # its SQLite folder removed afterwards
    assert result["checkpoints"] == "background every 0.2 s"
    assert set(result) >= {"begin_ms", "cpu_ms_per_change", "commits", "other_durable_commit_ms"}
    assert isinstance(result["background_passes_ms"], dict)
    assert isinstance(result["durable_commits_beside_a_pass"], int)
