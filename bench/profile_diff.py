"""Where a server's CPU per answer goes, from py-spy's raw (folded) stacks, by library.

    python -m bench.profile_diff GATEWAY.folded [--cpu-us US]
        [--reference REFERENCE.folded --reference-cpu-us US] [--thread NAME] [--top 25]

Reads ``py-spy record --threads --format raw`` output (one line a stack: ``thread (TID):
NAME;frame;frame … COUNT``, as ``bench.loop_profile --py-spy`` writes it) and prints,
for one thread (default: ``MainThread``), the samples by the *group* of the innermost
frame that belongs to a known library (our ``service/``, ``audit/``, ``policies/``,
``common/``, aiohttp, asyncio/uvloop, sqlite, cryptography, json, …; with ``--native``
stacks a libc system call counts as ``kernel: NAME``), the top frames by self and our
functions inclusive. Samples whose innermost frame is the loop's own poll (``Runner.run``
or ``run_app`` without a Python frame inside, or ``epoll_wait``; the audit writer
thread's ``Worker._run`` waiting for its queue) are counted as *idle*:
py-spy's ``--nonblocking`` mode cannot tell a thread blocked in ``epoll_wait`` from one
running, so they are left out of the busy samples. With ``--cpu-us`` (the thread's CPU per
answer, e.g. from ``bench.loop_profile``'s per-thread line) each share of the busy samples
is also shown as µs per answer; with a reference profile the two are put side by side and
the difference is what the gateway adds. A profile for reading, not a measurement to
assert on.
"""

from __future__ import annotations

import argparse
import collections
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_THREAD = re.compile(r"thread \((\d+)\): (.*)$")
_LINE = re.compile(r":\d+\)$")
#: (needle in a frame, group): the first frame from the innermost one outwards that
#: matches one of these names the sample's group
GROUPS: tuple[tuple[str, str], ...] = (
    ("(service/", "ours: service"), ("(audit/", "ours: audit"),
    ("(policies/", "ours: policies"), ("(common/", "ours: common"),
    ("(bench/", "reference handler (bench/)"),
    ("libsqlite3", "sqlite"), ("(sqlite3/", "sqlite"),
    ("cryptography", "cryptography"), ("libcrypto", "cryptography"),
    ("(aiohttp/", "aiohttp"), ("_http_parser", "aiohttp"), ("_http_writer", "aiohttp"),
    ("(multidict/", "multidict/yarl"), ("(yarl/", "multidict/yarl"),
    ("(json/", "json/orjson"), ("orjson", "json/orjson"),
    ("(asyncio/", "asyncio/uvloop"), ("uvloop", "asyncio/uvloop"), ("(loop.c", "asyncio/uvloop"),
    ("(_weakrefset", "asyncio/uvloop"),
    ("(logging/", "logging"), ("(prometheus_client/", "prometheus_client"),
)
#: innermost frames that are a thread waiting for work: the loop for its sockets, the
#: audit writer thread for its queue (``calls.get()``)
IDLE_LEAVES = ("Runner.run (asyncio/runners.py)", "run_app (aiohttp/web.py)",
               "epoll_wait (libc", "epoll_pwait (libc", "Worker._run (audit/worker.py)")
#: libc functions that are a system call: the time is the kernel's
SYSCALLS = frozenset({
    "write", "read", "writev", "readv", "send", "sendmsg", "sendto", "recv", "recvfrom",
    "recvmsg", "getpid", "fdatasync", "fsync", "pwrite64", "pread64", "sem_post",
    "pthread_cond_signal", "pthread_cond_wait", "pthread_cond_timedwait", "futex",
    "epoll_ctl", "close", "accept4", "clock_gettime",
})
OURS = ("(service/", "(audit/", "(policies/", "(common/")


@dataclass
class Profile:
    """One thread's samples: by group, self by frame, ours inclusive."""

    thread: str
    total: int = 0
    idle: int = 0
    groups: collections.Counter[str] = field(default_factory=collections.Counter)
    self_of: collections.Counter[str] = field(default_factory=collections.Counter)
    inclusive: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def busy(self) -> int:
        return self.total - self.idle

    def share(self, count: int) -> float:
        """``count`` as a share of the busy samples (0 when there are none)."""
        return count / self.busy if self.busy else 0.0


def _clean(frame: str) -> str:
    return _LINE.sub(")", frame)


def group_of(frames: list[str]) -> str:
    """The group of a stack (innermost frame last)."""
    leaf = frames[-1] if frames else "?"
    name = leaf.split(" (", 1)[0]
    if "(libc" in leaf and name in SYSCALLS:
        return f"kernel: {name}"
    for frame in reversed(frames):
        for needle, group in GROUPS:
            if needle in frame:
                return group
    return "rest"


def parse(lines: Iterable[str], thread: str = "MainThread") -> Profile:
    """The samples of the thread named ``thread`` in py-spy's raw output."""
    profile = Profile(thread)
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        if match is None or match.group(2).strip() != thread:
            continue
        count = int(count_text)
        frames = [_clean(frame) for frame in frames[1:]]
        profile.total += count
        leaf = frames[-1] if frames else "?"
        if any(leaf.startswith(idle) for idle in IDLE_LEAVES):
            profile.idle += count
            continue
        profile.groups[group_of(frames)] += count
        profile.self_of[leaf] += count
        for frame in set(frames):
            if any(ours in frame for ours in OURS):
                profile.inclusive[frame] += count
    return profile


def _us(profile: Profile, count: int, cpu_us: float | None) -> str:
    return f"{profile.share(count) * cpu_us:6.1f}" if cpu_us else "     -"


def report(profile: Profile, cpu_us: float | None = None, top: int = 25) -> list[str]:
    """Markdown-ish tables of one profile."""
    out = [f"{profile.thread}: {profile.total} samples, idle (waiting for work) "
           f"{profile.idle}, busy {profile.busy}"
           + (f"; {cpu_us:.1f} µs CPU per answer" if cpu_us else "")]
    out.append("| group | share of busy | µs/answer |")
    for group, count in profile.groups.most_common():
        out.append(f"| {group} | {100 * profile.share(count):5.1f} % | "
                   f"{_us(profile, count, cpu_us)} |")
    out.append(f"top {top} frames by self:")
    for frame, count in profile.self_of.most_common(top):
        out.append(f"| {frame} | {100 * profile.share(count):5.1f} % | "
                   f"{_us(profile, count, cpu_us)} |")
    out.append(f"top {top} of our functions, inclusive:")
    for frame, count in profile.inclusive.most_common(top):
        out.append(f"| {frame} | {100 * profile.share(count):5.1f} % | "
                   f"{_us(profile, count, cpu_us)} |")
    return out


def diff(a: Profile, a_us: float, b: Profile, b_us: float) -> list[str]:
    """Group by group, µs per answer of A (the gateway) and B (the reference)."""
    out = ["| group | gateway µs/answer | reference µs/answer | difference |"]
    groups = sorted(set(a.groups) | set(b.groups),
                    key=lambda g: -(a.share(a.groups[g]) * a_us - b.share(b.groups[g]) * b_us))
    for group in groups:
        ua, ub = a.share(a.groups[group]) * a_us, b.share(b.groups[group]) * b_us
        out.append(f"| {group} | {ua:6.1f} | {ub:6.1f} | {ua - ub:+6.1f} |")
    out.append(f"| all (busy) | {a_us:6.1f} | {b_us:6.1f} | {a_us - b_us:+6.1f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folded", type=Path)
    parser.add_argument("--cpu-us", type=float, default=None)
    parser.add_argument("--reference", type=Path, default=None)
    parser.add_argument("--reference-cpu-us", type=float, default=None)
    parser.add_argument("--thread", default="MainThread")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    gateway = parse(args.folded.read_text().splitlines(), args.thread)
    print("\n".join(report(gateway, args.cpu_us, args.top)))
    if args.reference:
        reference = parse(args.reference.read_text().splitlines(), args.thread)
        print()
        print("\n".join(report(reference, args.reference_cpu_us, args.top)))
        if args.cpu_us and args.reference_cpu_us:
            print()
            print("\n".join(diff(gateway, args.cpu_us, reference, args.reference_cpu_us)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
