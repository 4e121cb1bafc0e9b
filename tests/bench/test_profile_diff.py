"""``python -m bench.profile_diff`` (docs/performance.md, "Where the gateway's CPU per
keycom answer goes on the AMD machine"): its aggregation of py-spy's raw stacks, on a
small made-up file - no py-spy, no server, no timing asserted."""

from __future__ import annotations

from bench.profile_diff import diff, group_of, parse, report

_RUN = "thread (10): MainThread;main (service/cli.py:36);Runner.run (asyncio/runners.py:118)"
_EDGE = f"{_RUN};edge_middleware (service/edge.py:50)"
RAW = "\n".join((
    f"{_RUN} 6",
    f"{_RUN};RequestHandler.start (aiohttp/web_protocol.py:666)"
    ";StreamWriter._writelines (aiohttp/http_writer.py:116) 3",
    f"{_EDGE};Worker.submit (audit/worker.py:48) 2",
    f"{_EDGE};get_running_loop (_asynciomodule.c:274);getpid (libc.so.6) 1",
    "thread (11): audit-sqlite-w;Worker._run (audit/worker.py:64)"
    ";_w_end (audit/store_sqlite.py:80);sqlite3VdbeExec (libsqlite3.so.0) 4",
    "not a stack line",
))


def test_main_thread_grouped_idle_left_out() -> None:
    profile = parse(RAW.splitlines())
    assert (profile.total, profile.idle, profile.busy) == (12, 6, 6)
    assert profile.groups == {"aiohttp": 3, "ours: audit": 2, "kernel: getpid": 1}
    assert profile.self_of["Worker.submit (audit/worker.py)"] == 2
    assert profile.inclusive["edge_middleware (service/edge.py)"] == 3
    assert profile.inclusive["main (service/cli.py)"] == 6


def test_other_thread_and_native_group() -> None:
    writer = parse(RAW.splitlines(), "audit-sqlite-w")
    assert writer.groups == {"sqlite": 4}
    assert group_of(["x (service/a.py)", "0x7f (libc.so.6)"]) == "ours: service"
    assert group_of(["nothing known"]) == "rest"


def test_report_and_diff_in_us_per_answer() -> None:
    gateway = parse(RAW.splitlines())
    lines = report(gateway, cpu_us=600.0, top=2)
    assert "| aiohttp |  50.0 % |  300.0 |" in lines
    reference = parse(RAW.splitlines()[:2])
    table = diff(gateway, 600.0, reference, 300.0)
    assert "| ours: audit |  200.0 |    0.0 | +200.0 |" in table
    assert table[-1] == "| all (busy) |  600.0 |  300.0 | +300.0 |"
