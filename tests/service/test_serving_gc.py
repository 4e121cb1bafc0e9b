"""A serving process's garbage collector: once the app serves, its start-up objects are
frozen (no collection scans them again) and the young generation has the serving
threshold, in ``serve`` (one process) and in each worker of ``serve --workers N``.

Each case runs in a process of its own (a fresh interpreter: freezing the test
process's objects would keep them for the rest of the session), calling the function
the CLI calls, and reads the collector's state the moment the process starts serving,
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
from pathlib import Path
from service.config import load_settings

settings = load_settings(Path(sys.argv[2]), {})
port = int(sys.argv[3])

def seen():
    scanned = {id(o) for o in gc.get_objects()}  # frozen objects are not listed
    state = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
             "settings_scanned": gc.is_tracked(settings) and id(settings) in scanned}
    print(json.dumps(state), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # stop as an operator does

if sys.argv[1] == "serve":
    from service.serving import serve_process  # what `serve` runs
    serve_process(settings, "127.0.0.1", port, on_started=lambda _runner: seen())
else:
    from service import workers  # what the supervisor runs in each forked worker

    class Ready:  # the supervisor's queue, told once the worker serves
        def put(self, _item):
            seen()

    workers._worker_main(settings, "127.0.0.1", port, 0, sys.argv[4], Ready())
"""


@pytest.mark.parametrize("process", ["serve", "worker"])
def test_a_serving_process_has_frozen_its_start_up_objects_and_set_the_threshold(
    process: str, tmp_path: Path
) -> None:
    port = free_block()
    upstreams = dict.fromkeys(SYSTEMS, "http://127.0.0.1:9")  # not called at start
    config = serve_config(tmp_path, upstreams, port)
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    done = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", PROBE, process, str(config), str(port), str(metrics)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["frozen"] > 0
    assert not state["settings_scanned"]  # built before serving: frozen
    assert tuple(state["threshold"]) == GC_THRESHOLD != (700, 10, 10)
