"""common/cpus.py: the usable CPUs, the affinity bounded by a cgroup CPU quota (files of
a cgroup tree of the test's own: no quota can be set on this machine's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.verify import helper_count
from common import cpus


def test_cgroup_v2_and_v1_quotas(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpus.cgroup_quota(tmp_path) == (150000, 100000)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.cgroup_quota(v1) == (50000, 100000)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpus.cgroup_quota(v1) is None
    assert cpus.cgroup_quota(tmp_path / "none") is None


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [(None, None), ("max 100000", None), ("50000 100000", 1), ("150000 100000", 2),
     ("1000000000 100000", None)],
)  # fmt: skip
def test_usable_cpus_is_the_affinity_bounded_by_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_max: str | None, expected: int | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    monkeypatch.setattr(cpus, "CGROUP_ROOT", tmp_path)
    assert cpus.usable_cpus() == (affinity if expected is None else min(affinity, expected))


def test_verify_starts_no_helper_under_a_quota_of_one_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod limited to one CPU on a many-core host: no helper process (it would only
    take the CPU from the verification itself)."""
    monkeypatch.setattr(cpus, "CGROUP_ROOT", tmp_path)
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert helper_count() == 0
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert helper_count() == max(0, min(3, len(os.sched_getaffinity(0)) - 1))
