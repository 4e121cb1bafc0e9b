"""CPU per metric update: a counter's ``inc`` and a histogram's ``observe`` (the
gateway's 12 latency buckets), with the values in process memory (one process), in
prometheus_client's multiprocess files (``values.MultiProcessValue``), and in the same
files through the gateway's value class (``service/multiproc.py``, ``serve --workers N``).

    python -m bench.metric_values [--number 200000] [--repeat 7]

Each kind runs in a process of its own (the value class is chosen per process before any
metric exists); the best of ``--repeat`` runs of ``--number`` updates, in CPU time
(``time.process_time``), so that other work on the machine moves it little. Not a test
assertion (docs/performance.md, "Two workers, the service side").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap

KINDS = ("in-process", "library files", "gateway files")

_RUN = textwrap.dedent("""
    import json, os, sys, time, timeit
    kind, directory, number, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if kind == "library files":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        from prometheus_client import values
        values.ValueClass = values.MultiProcessValue()
    elif kind == "gateway files":
        from service import multiproc
        multiproc.enable(directory)
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from service.metrics import _LATENCY_BUCKETS
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["a"], registry=registry).labels("x")
    histogram = Histogram("h", "h", ["a"], buckets=_LATENCY_BUCKETS, registry=registry)
    child = histogram.labels("x")
    out = {}
    for name, update in (("inc", counter.inc), ("observe", lambda: child.observe(0.003))):
        best = min(timeit.repeat(update, number=number, repeat=repeat, timer=time.process_time))
        out[name] = 1e6 * best / number
    print(json.dumps(out))
""")


def measure(kind: str, number: int, repeat: int) -> dict[str, float]:
    """µs of CPU per update of each kind of value, in a process of its own."""
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", _RUN, kind, directory, str(number), str(repeat)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return dict(json.loads(done.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    for kind in KINDS:
        found = measure(kind, args.number, args.repeat)
        print(f"{kind:14}: inc {found['inc']:.3f} µs, observe {found['observe']:.3f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
