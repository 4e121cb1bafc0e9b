"""What a SQLite audit store's commits write to its WAL: frames per commit, by B-tree.

    python -m bench.wal_frames --db PATH
    python -m bench.wal_frames --pid PID [--after 9] [--out DIR]
    python -m bench.wal_frames --pid PID --watch 11 [--after 2]

``--db``: a store's file and its ``PATH-wal`` (a copy, or a store no process writes to).
``--pid``: a running gateway's (or any process's) SQLite audit store, found among its
open files after ``--after`` seconds and copied (file, WAL, shared memory) into
``--out`` (default: a temporary folder) before it is read - e.g. the gateway of
``bench.loop_profile``, 9 s into its 14 s.

Reads the WAL's current generation (the frames whose salts match its header; a WAL
restarted by a checkpoint begins a new one), groups them by commit (a frame with a
database size ends one), maps each page to its table or index (SQLite's ``dbstat`` on
the file with the WAL) and prints the frames per commit of each B-tree, the frames and
WAL bytes per commit, and - from the head row (``audit_head``) as each commit wrote it -
the entries per commit. The WAL's bytes per answer are these × the commits per answer.
``--watch S``: instead, the store's wal-index header (its ``-shm``: the WAL's frames
``mxFrame`` and those copied, ``nBackfill``) read every 2 ms for S seconds: how often the
WAL started again from its beginning (its salt changed), its most frames, and the share
of readings with every frame copied (docs/performance.md, "The SQLite WAL restarts under
load"). A reading of what is on disk; not a test assertion (docs/performance.md, "The SQLite
writer thread's statements, again").
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_WAL_HEADER, _FRAME_HEADER = 32, 24


@dataclass
class Frames:
    """The WAL's current generation: its page size, and each commit's frames as
    (page number, page image) in the order written."""

    page_size: int
    commits: list[list[tuple[int, bytes]]] = field(default_factory=list)
    uncommitted: int = 0  # frames after the last commit frame (a transaction under way)


def read_frames(wal: bytes) -> Frames:
    """The frames of ``wal``'s current generation, by commit."""
    if len(wal) < _WAL_HEADER:
        return Frames(0)
    _magic, _version, page_size, _seq, salt1, salt2 = struct.unpack(">6I", wal[:24])
    got, current = Frames(page_size), []
    offset = _WAL_HEADER
    while offset + _FRAME_HEADER + page_size <= len(wal):
        page, size_after, s1, s2 = struct.unpack(">4I", wal[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break  # frames of an earlier generation, overwritten only in part
        start = offset + _FRAME_HEADER
        current.append((page, wal[start : start + page_size]))
        if size_after:
            got.commits.append(current)
            current = []
        offset += _FRAME_HEADER + page_size
    got.uncommitted = len(current)
    return got


def owners(db: Path) -> tuple[dict[int, str], int | None]:
    """Each page's table or index (``dbstat``, with the WAL), and ``audit_head``'s page."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        pages = {int(page): str(name) for name, page in con.execute(
            "SELECT name, pageno FROM dbstat")}  # fmt: skip
        row = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'"
        ).fetchone()
    return pages, (int(row[0]) if row else None)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for n in range(9):
        byte = data[at + n]
        if n == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + n + 1
    raise ValueError("varint")  # pragma: no cover - the loop returns


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def head_seq(page: bytes, page_number: int) -> int | None:
    """``audit_head.seq`` in an image of its (leaf) page: the record's second column (the
    first, ``id``, is the rowid). None if the page is not a table leaf with one row."""
    base = 100 if page_number == 1 else 0
    if page[base] != 0x0D or struct.unpack(">H", page[base + 3 : base + 5])[0] != 1:
        return None
    cell = struct.unpack(">H", page[base + 8 : base + 10])[0]
    _payload, at = _varint(page, cell)
    _rowid, at = _varint(page, at)
    header_size, body = _varint(page, at)
    types = []
    while body < at + header_size:
        serial, body = _varint(page, body)
        types.append(serial)
    value_at = at + header_size
    if len(types) < 2:
        return None
    first = types[0]
    value_at += _INT_SIZES.get(first, 0) if first < 12 else (first - 12) // 2
    serial = types[1]
    if serial in (8, 9):
        return serial - 8
    size = _INT_SIZES.get(serial)
    if size is None:
        return None
    return int.from_bytes(page[value_at : value_at + size], "big", signed=True)


def summarize(db: Path) -> dict[str, object]:
    """Frames per commit by B-tree, frames and bytes per commit, entries per commit."""
    frames = read_frames(Path(f"{db}-wal").read_bytes())
    pages, head_page = owners(db)
    commits = frames.commits
    by_tree: collections.Counter[str] = collections.Counter()
    seqs: list[int] = []
    for commit in commits:
        for page, _image in commit:
            by_tree[pages.get(page, "?")] += 1
        images = [image for page, image in commit if page == head_page]
        if images and head_page is not None:
            seq = head_seq(images[-1], head_page)
            if seq is not None:
                seqs.append(seq)
    n = len(commits)
    count = sum(len(commit) for commit in commits)
    entries = (seqs[-1] - seqs[0]) / (len(seqs) - 1) if len(seqs) > 1 else None
    return {
        "commits": n,
        "frames_per_commit": count / n if n else 0.0,
        "wal_bytes_per_commit": count * (frames.page_size + _FRAME_HEADER) / n if n else 0.0,
        "entries_per_commit": entries,
        "by_tree": {name: got / n for name, got in by_tree.most_common()} if n else {},
        "page_size": frames.page_size,
        "uncommitted": frames.uncommitted,
    }


def grab(pid: int, out: Path) -> Path:
    """Copy the SQLite audit store ``pid`` has open (its file, WAL and shared memory)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if Path(f"{target}-wal").exists() and not target.endswith(("-wal", "-shm")):
            found.append(target)
    if not found:
        raise SystemExit(f"no SQLite file with a WAL open in process {pid}")
    source = Path(sorted(found)[0])
    out.mkdir(parents=True, exist_ok=True)
    copy = out / source.name
    for suffix in ("-wal", "", "-shm"):  # the WAL first: the file holds nothing newer
        with open(f"{source}{suffix}", "rb") as src, open(f"{copy}{suffix}", "wb") as dst:
            shutil.copyfileobj(src, dst)
    return copy


def _shm_of(pid: int) -> Path:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith("-shm"):
            return Path(target)
    raise SystemExit(f"no SQLite wal-index open in process {pid}")


def watch(shm: Path, seconds: float, every: float = 0.002) -> dict[str, int]:
    """The wal-index header of ``shm`` read every ``every`` s for ``seconds``: the WAL's
    restarts (the salts in the header changed), its most frames, the readings and those
    with every frame copied. ``os.pread``: a buffered file would serve a stale header."""
    fd = os.open(shm, os.O_RDONLY)
    got = {"readings": 0, "restarts": 0, "most_frames": 0, "all_copied": 0}
    salts = None
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            header = os.pread(fd, 100, 0)
            frames, now = struct.unpack_from("=I", header, 16)[0], header[32:40]
            got["readings"] += 1
            got["all_copied"] += frames == struct.unpack_from("=I", header, 96)[0]
            got["restarts"] += salts is not None and now != salts
            got["most_frames"] = max(got["most_frames"], frames)
            salts = now
            time.sleep(every)
    finally:
        os.close(fd)
    return got


def report(got: dict[str, object]) -> str:
    entries = got["entries_per_commit"]
    lines = [
        f"commits {got['commits']} (page size {got['page_size']}, "
        f"{got['uncommitted']} frames not committed yet)",
        f"frames per commit {got['frames_per_commit']:.1f}, WAL bytes per commit "
        f"{got['wal_bytes_per_commit']:,.0f}",
        "entries per commit " + (f"{entries:.1f}" if isinstance(entries, float) else "-"),
    ]
    if isinstance(entries, float) and entries:
        lines.append(f"frames per entry {float(got['frames_per_commit']) / entries:.2f}")  # type: ignore[arg-type]
    by_tree = got["by_tree"]
    assert isinstance(by_tree, dict)
    lines += [f"  {name:40s} {per:6.2f} per commit" for name, per in by_tree.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="a store's file (its WAL beside it)")
    where.add_argument("--pid", type=int, help="copy the store this process has open")
    parser.add_argument("--after", type=float, default=0.0, help="seconds to wait first")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--watch", type=float, default=None,
                        help="seconds: watch the WAL's restarts instead (with --pid)")  # fmt: skip
    args = parser.parse_args(argv)
    time.sleep(args.after)
    if args.watch is not None and args.pid is not None:
        print(watch(_shm_of(args.pid), args.watch))
        return 0
    if args.db is not None:
        print(report(summarize(args.db)))
        return 0
    with tempfile.TemporaryDirectory(prefix="wal-frames-") as tmp:
        copy = grab(args.pid, args.out or Path(tmp))
        print(report(summarize(copy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
