"""A serving process's garbage collector: once the app serves, its start-up objects are
frozen (no collection scans them again) and the young generation has the serving
threshold, in ``serve`` (one process) and in each worker of ``serve --workers N``.

Each case runs `serve` in a process of its own (a fresh interpreter: freezing the test
process's objects would keep them for the rest of the session), with the collector's
settling observed (wrapped, still called) the moment the process starts serving,
then stops the process with SIGTERM as an operator would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main as cli_main
from service.registry import SYSTEMS
from service.serving import GC_THRESHOLD
from tests.service.processes import serve_config
from tests.service.test_demo_command import free_block

PROBE = """
import gc, json, os, signal, sys
from service import serving
from service.cli import main

settle_gc = serving.settle_gc

def seen():  # what the process looks like when it settles its collector, then after
    inherited = gc.get_freeze_count()
    settle_gc()
    scanned = {id(o) for o in gc.get_objects()}  # frozen objects are not listed
    state = {"inherited": inherited, "frozen": gc.get_freeze_count(),
             "threshold": gc.get_threshold(), "main_scanned": id(main) in scanned}
    print(json.dumps(state), flush=True)
    supervisor = os.getppid() if sys.argv[2] != "1" else os.getpid()
    os.kill(supervisor, signal.SIGTERM)  # stop as an operator does

serving.settle_gc = seen
sys.exit(main(["serve", "--config", sys.argv[1], "--workers", sys.argv[2]]))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_serving_process_has_frozen_its_start_up_objects_and_set_the_threshold(
    workers: int, tmp_path: Path
) -> None:
    port = free_block()
    upstreams = dict.fromkeys(SYSTEMS, "http://127.0.0.1:9")  # not called at start
    config = serve_config(tmp_path, upstreams, port)
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
    done = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", PROBE, str(config), str(workers)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["frozen"] > 0
    assert not state["main_scanned"]  # alive before serving: frozen
    assert tuple(state["threshold"]) == GC_THRESHOLD != (700, 10, 10)
    if workers > 1:  # the supervisor froze its objects before it forked this worker
        assert state["inherited"] > 0
