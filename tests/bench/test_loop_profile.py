"""``bench/loop_profile.py`` (docs/performance.md, "The event loop thread, profiled
afresh"): the per-thread CPU read from ``/proc`` and the summary of py-spy's folded
stacks. Shapes only: no timing is asserted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bench.loop_profile import summarise, thread_cpu

FOLDED = """\
thread (4242): MainThread;Runner.run (asyncio/runners.py:118) 30
thread (4242): MainThread;Runner.run (asyncio/runners.py:118);edge_middleware (service/edge.py:50);mask_record (policies/masker.py:94) 10
thread (4242): MainThread;Runner.run (asyncio/runners.py:118);edge_middleware (service/edge.py:52);StreamWriter._writelines (aiohttp/http_writer.py:116) 20
thread (4242): MainThread;Runner.run (asyncio/runners.py:118);ChainWriter._run (audit/writer.py:186) 40
thread (4300): Thread-1;_worker (audit/worker.py:70) 999
"""  # noqa: E501 - py-spy's lines as it writes them


def test_the_summary_counts_the_main_thread_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folded = tmp_path / "gateway.folded"
    folded.write_text(FOLDED)
    summarise(folded, 4242)
    out = capsys.readouterr().out
    assert "main thread: 100 samples" in out  # the other thread's 999 left out
    assert "40.0 %  ours: audit" in out
    assert "30.0 %  the loop (uvloop's C, kernel)" in out
    assert "20.0 %  aiohttp" in out
    assert "10.0 %  ours: policies" in out
    # inclusive by function, a function's lines taken together (50 and 52)
    assert "30.0 %  edge_middleware (service/edge.py)" in out


def test_no_sample_of_the_main_thread_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folded = tmp_path / "gateway.folded"
    folded.write_text(FOLDED)
    summarise(folded, 1)
    assert "no samples of the main thread" in capsys.readouterr().out


def test_thread_cpu_lists_every_thread_of_a_process() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="waiting")
    other.start()
    try:
        threads = thread_cpu(os.getpid())
    finally:
        stop.set()
        other.join()
    assert os.getpid() in threads  # the main thread's id is the process id
    assert len(threads) >= 2
    assert all(seconds >= 0.0 for _, seconds in threads.values())
