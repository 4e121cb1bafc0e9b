"""Write a directory the way the kubelet updates a mounted ConfigMap (AtomicWriter).

The data of one generation lives in a hidden ``..2026_…`` directory; ``..data`` is a
symlink to it; every key is a top-level symlink ``name -> ..data/name``. An update
writes a new generation, points a fresh ``..data_tmp`` link at it and renames that over
``..data`` (one atomic step), then fixes the top-level links and removes the old
generation.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from policies.loader import CATALOG


def catalog(**overrides: str) -> dict[str, str]:
    """The shipped policy files by name, with some replaced by text of our own."""
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(CATALOG.glob("*.yaml"))}
    files.update(overrides)
    return files


def write_configmap(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    generation = directory / f"..2026_01_01_00_00_00.{uuid.uuid4().hex[:9]}"
    generation.mkdir()
    for name, text in files.items():
        (generation / name).write_text(text, encoding="utf-8")
    tmp = directory / "..data_tmp"
    tmp.symlink_to(generation.name)
    os.replace(tmp, data)  # rename(2): the swap is atomic
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for link in directory.iterdir():
        if link.is_symlink() and not link.name.startswith("..") and link.name not in files:
            link.unlink()
    if old is not None:
        shutil.rmtree(directory / old)


def note_read_only(text: str) -> str:
    """keycom.yaml with ``note`` made read-only (a new version that refuses a note)."""
    block = 'description: "Customer note or additional details"\n'
    head, tail = text.split(block, 1)
    assert "    edit: contact\n" in tail
    return head + block + tail.replace("    edit: contact\n", "    read_only: true\n", 1)
