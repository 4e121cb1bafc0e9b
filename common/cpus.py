"""The CPUs this process may use: its affinity, bounded by a cgroup CPU quota.

In a container the affinity often shows every host CPU while the pod's CPU limit is a
quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``): what ``serve --workers 0`` runs
(``service.workers``) and how many helper processes a long verification starts
(``audit.verify``) both count by this.
"""

from __future__ import annotations

import os
from pathlib import Path

#: where the cgroup files are read (a test points it at a tree of its own)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus() -> int:
    """The affinity (``os.cpu_count()`` where there is none), bounded by a cgroup CPU
    quota rounded up; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(CGROUP_ROOT)
    if quota is not None:
        cpus = min(cpus, max(1, -(-quota[0] // quota[1])))
    return max(1, cpus)


def cgroup_quota(root: Path) -> tuple[int, int] | None:
    """(quota, period) in microseconds, or None when unlimited or unknown."""
    try:
        text = (root / "cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return int(text[0]), int(text[1])
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return (quota, period) if quota > 0 and period > 0 else None
