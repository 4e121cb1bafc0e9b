"""The event loop thread's CPU under load: by thread, and by function or library.

    python -m bench.loop_profile [--server gateway|reference] [--checkout DIR]
        [--system keycom] [--store sqlite] [--customers N] [--seconds 12]
        [--py-spy PATH] [--perf] [--cprofile FILE] [--out DIR]

One server - the gateway from ``--checkout`` (default: the current folder), with a fresh
audit log and the bench's configuration, or the reference proxy (``bench/bare_proxy.py``)
- against the emulators, loaded by wrk (``bench/patch.lua``, 32 connections) for
``--seconds`` (at most 20) after a 2 s warm-up. Prints the CPU per answer of each of the
server's threads (``/proc/PID/task``, user + system, over the loaded seconds) and the
share of a core each used. Optional views of the same seconds:

* ``--py-spy PATH`` (a py-spy binary; not a dependency of this project): py-spy samples
  the process (``--nonblocking``, 250 Hz), the folded stacks go to
  ``DIR/<server>.folded``, and the main thread's samples are summarised: the innermost
  frame by what it belongs to (our packages, aiohttp, asyncio, the loop's C and the
  kernel under ``Runner.run``), our functions inclusive, the top frames by self.
  py-spy counts a thread that waits for a CPU as busy, so on a loaded machine the loop's
  own line is inflated; read shares, not microseconds.
* ``--perf``: ``perf record`` of the main thread only (on-CPU time), reported by shared
  object (the interpreter, the kernel, uvloop, orjson, ...) and symbol.
* ``--cprofile FILE``: the gateway runs under ``cProfile`` (a ``sitecustomize`` on its
  ``PYTHONPATH``), the stats written to FILE when it stops; every Python call is
  inflated by the profiler, so read calls per change and relative weights.

``--customers N`` picks the changes among the first N eligible customers only (each is
changed many times; after its first change a customer's audit key is cached): the
request path without a new customer's first change. Few customers and 32 connections
also make changes wait for each other's customer lock, so the server may idle: read the
CPU per answer, not the rate. Not a test assertion: a profile, for reading.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import WORKLOADS, eligible_customers, run_wrk
from bench.procs import Emulators, audit_store, cli, free_port, gateway_config, server

#: the innermost frame's file, by what it belongs to (first match wins)
KINDS = (
    ("(service/", "ours: service"), ("(audit/", "ours: audit"),
    ("(policies/", "ours: policies"), ("(common/", "ours: common"),
    ("(aiohttp/", "aiohttp"), ("(asyncio/runners.py", "the loop (uvloop's C, kernel)"),
    ("(asyncio/", "asyncio"), ("uvloop", "the loop (uvloop's C, kernel)"),
    ("(multidict/", "multidict/yarl"), ("(yarl/", "multidict/yarl"),
    ("orjson", "orjson"), ("httptools", "httptools"), ("(logging/", "logging"),
    ("(_weakrefset", "asyncio"), ("(prometheus_client/", "prometheus_client"),
    ("(bench/", "bench"),
)
#: a stack's first frame with ``--threads``: ``thread (TID): NAME``
_THREAD = re.compile(r"thread \((\d+)\)")
_LINE = re.compile(r":\d+\)$")
OURS = ("(service/", "(audit/", "(policies/", "(common/")


_SITE = """
import atexit, cProfile, sys
if "serve" in sys.argv:
    _profile = cProfile.Profile()
    _profile.enable()
    atexit.register(lambda: (_profile.disable(), _profile.dump_stats({out!r})))
"""


def _perf() -> str:
    path = shutil.which("perf")
    if path is None:
        raise SystemExit("--perf: perf is not installed (apt-get install linux-perf)")
    return path


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of ``pid``: its name and user + system CPU seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError, IndexError):
            continue
    return found


def _kind(frame: str) -> str:
    for needle, kind in KINDS:
        if needle in frame:
            return kind
    if ".py:" not in frame:
        return "native (C, kernel)"
    return "other Python"


def summarise(folded: Path, main_tid: int, top: int = 40) -> None:
    """The main thread's samples: by the innermost frame's kind, and ours inclusive."""
    by_kind: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    self_of: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        thread = _THREAD.match(frames[0])
        if thread is None or int(thread.group(1)) != main_tid:
            continue
        count = int(count_text)
        total += count
        frames = [_LINE.sub(")", frame) for frame in frames[1:]]
        leaf = frames[-1] if frames else "?"
        by_kind[_kind(leaf)] += count
        self_of[leaf] += count
        for frame in set(frames):
            if any(o in frame for o in OURS):
                inclusive[frame] += count
    if not total:
        print("no samples of the main thread")
        return
    print(f"main thread: {total} samples; innermost frame by kind:")
    for kind, count in by_kind.most_common():
        print(f"  {100.0 * count / total:5.1f} %  {kind}")
    print("our functions, inclusive:")
    for frame, count in inclusive.most_common(top):
        print(f"  {100.0 * count / total:5.1f} %  {frame}")
    print("self, top frames:")
    for frame, count in self_of.most_common(top):
        print(f"  {100.0 * count / total:5.1f} %  {frame}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("gateway", "reference"), default="gateway")
    parser.add_argument("--checkout", type=Path, default=Path.cwd())
    parser.add_argument("--system", choices=tuple(WORKLOADS), default="keycom")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--py-spy", dest="py_spy", default=None)
    parser.add_argument("--cprofile", type=Path, default=None,
                        help="the gateway under cProfile (a sitecustomize), stats to this file")
    parser.add_argument("--perf", action="store_true",
                        help="also perf record the main thread (perf must be installed)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.seconds > 20:
        parser.error("at most 20 s of load at once (a shared machine)")
    workload = WORKLOADS[args.system]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        out = args.out or folder
        out.mkdir(parents=True, exist_ok=True)
        ids = eligible_customers(workload).ids
        ids = ids[: args.customers] if args.customers else ids
        ids_file = folder / "ids.txt"
        ids_file.write_text("\n".join(map(str, ids)) + "\n")
        emulators = stack.enter_context(Emulators(folder / "emulators.log"))
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(args.checkout.resolve()))
        if args.cprofile:  # started at interpreter start, dumped at a clean exit
            (folder / "site").mkdir()
            (folder / "site" / "sitecustomize.py").write_text(_SITE.format(
                out=str(args.cprofile.resolve())))
            env["PYTHONPATH"] = f"{folder / 'site'}{os.pathsep}{env['PYTHONPATH']}"
        if args.server == "reference":
            urls = emulators.urls
            argv_ = [sys.executable, "-m", "bench.bare_proxy", "--port", str(port),
                     "--billbee", urls["billbee"], "--keycom", urls["keycom"], "--uvloop",
                     "--reread"]
        else:
            audit_url = stack.enter_context(audit_store(args.store, folder))
            config = gateway_config(folder, port=port, audit_url=audit_url,
                                    urls=emulators.urls, conflict_check=True)
            subprocess.run([cli(), "db", "upgrade", "--config", str(config)],  # noqa: S603
                           env=env, check=True, capture_output=True, cwd=args.checkout)
            argv_ = [cli(), "serve", "--config", str(config), "--workers", "1"]
        proc = stack.enter_context(server(argv_, port, args.server, folder / "server.log",
                                          env=env))
        url = f"http://127.0.0.1:{port}"
        run_wrk(url, workload, ids_file, stamp=1, connections=32, seconds=2)
        spy: subprocess.Popen[bytes] | None = None
        folded = out / f"{args.server}.folded"
        if args.py_spy:
            spy_argv = [args.py_spy, "record", "--pid", str(proc.pid), "--rate", "250",
                        "--duration", str(max(1, args.seconds - 2)), "--nonblocking",
                        "--threads", "--format", "raw", "--output", str(folded)]
            spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL,  # noqa: S603
                                   stderr=subprocess.DEVNULL)
        perf: subprocess.Popen[bytes] | None = None
        perf_data = out / f"{args.server}.perf.data"
        if args.perf:  # the main thread only (-t: its thread id is the process id)
            perf = subprocess.Popen(  # noqa: S603 - fixed argv
                [_perf(), "record", "-q", "-F", "999", "-t", str(proc.pid), "-o", str(perf_data),
                 "--", "sleep", str(max(1, args.seconds - 2))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = thread_cpu(proc.pid)
        started = time.perf_counter()
        run = run_wrk(url, workload, ids_file, stamp=2, connections=32, seconds=args.seconds)
        wall = time.perf_counter() - started
        after = thread_cpu(proc.pid)
        if spy is not None:
            spy.wait(timeout=60)
        if perf is not None:
            perf.wait(timeout=60)
        answers = max(1, run["requests"])
        print(f"{args.server} {args.system}/{args.store}, customers "
              f"{args.customers or len(ids)}: {run['rps']:.0f} req/s, {run['statuses']}, "
              f"load {os.getloadavg()[0]:.2f}")
        total = 0.0
        for tid, (name, seconds) in sorted(after.items()):
            used = seconds - before.get(tid, (name, 0.0))[1]
            total += used
            if used > 0:
                print(f"  thread {tid} {name}: {1e6 * used / answers:7.1f} µs/answer, "
                      f"{100.0 * used / wall:5.1f} % of a core")
        print(f"  all threads: {1e6 * total / answers:7.1f} µs/answer")
        if spy is not None and folded.exists():
            summarise(folded, proc.pid)
        if perf is not None and perf_data.exists():
            for sort in ("dso", "dso,sym"):
                report = subprocess.run(  # noqa: S603 - fixed argv
                    [_perf(), "report", "-i", str(perf_data), "--stdio", "--sort", sort,
                     "--percent-limit", "0.7"], capture_output=True, text=True, check=False)
                print("\n".join(line for line in report.stdout.splitlines()
                                if line.strip() and not line.startswith("#")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
