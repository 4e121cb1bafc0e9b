"""How many workers ``serve`` runs: the setting, ``--workers``, the usable CPUs."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from service import workers
from service.demo_settings import demo_settings
from service.registry import SYSTEMS
from service.settings import Settings


def settings(tmp_path: Path, url: str, count: int) -> Settings:
    base = demo_settings(
        port=0, state_dir=tmp_path, upstream_urls=dict.fromkeys(SYSTEMS, "http://127.0.0.1:9"),
        audit_url=f"sqlite+aiosqlite:///{tmp_path}/a.db", master_key=os.urandom(32),
        signing_key=os.urandom(32),
    )  # fmt: skip
    return dataclasses.replace(base, audit_url=url, workers=count)


def test_the_count_asked_wins_and_0_means_the_cpus_on_postgresql_1_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "usable_cpus", lambda: 6)
    sqlite = settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/a.db", 0)
    postgres = settings(tmp_path, "postgresql://127.0.0.1/test", 0)
    assert workers.resolve_workers(sqlite, None) == 1
    assert workers.resolve_workers(postgres, None) == 6
    assert workers.resolve_workers(postgres, 3) == 3
    assert workers.resolve_workers(dataclasses.replace(sqlite, workers=4), None) == 4
    assert workers.resolve_workers(dataclasses.replace(sqlite, workers=4), 1) == 1


def _sleep() -> None:
    time.sleep(60)


@pytest.mark.parametrize(("serving", "status"), [(False, 0), (True, 1)])
def test_a_worker_ended_by_the_stop_signal_before_it_served_is_a_clean_stop(
    tmp_path: Path, serving: bool, status: int
) -> None:
    """A SIGTERM passed on while a worker still starts (its default handler until its
    loop's are in place) ends it with -SIGTERM: a clean stop if it had not served yet,
    a failed one (exit 1) if it had (it should have drained)."""
    process = multiprocessing.get_context("fork").Process(target=_sleep)
    process.start()
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    process.join(30)
    assert process.exitcode == -signal.SIGTERM
    config = settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/a.db", 2)
    supervisor = workers.Supervisor(config, "127.0.0.1", 0, 2)
    supervisor._metrics_dir = str(tmp_path)
    supervisor._stopping = 1
    worker = workers._Worker(0, process, serving=serving)
    supervisor._workers[0] = worker
    assert supervisor._reap(worker) == status
    assert supervisor._workers == {}
