"""``make test``'s smoke of the end-to-end bench (docs/performance.md, "The gateway end
to end"): a short ``python -m bench.gateway_bench`` on SQLite must check every answer and
write results of the documented shape, and a run whose answers are refused must fail.
The first runs both servers as two processes (``--workers 2``: the gateway's workers and
the reference's processes), the second as one. No timing is asserted: timings live in
bench/ and docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHORT = [
    "--stores", "sqlite", "--reps", "1", "--duration", "1", "--warmup", "0",
    "--latency-duration", "1", "--connections", "4", "--no-plot",
]  # fmt: skip


def run_bench(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.gateway_bench", *SHORT, "--out-dir", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = run_bench(out, "--systems", "keycom,billbee", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "gateway.json").read_text()), out


def test_every_answer_of_the_smoke_is_checked(smoke: tuple[dict[str, Any], Path]) -> None:
    results, _ = smoke
    assert results["passed"] is True and results["problems"] == []
    assert [(s["system"], s["store"]) for s in results["scenarios"]] == [
        ("keycom", "sqlite"), ("billbee", "sqlite")
    ]
    answers = writes = audited = 0
    for scenario in results["scenarios"]:
        method = {"keycom": "PATCH", "billbee": "PUT"}[scenario["system"]]
        # keycom: the pre-image and the PATCH; billbee: pre-image, re-read, PUT
        calls = {"keycom": {"GET": 1, "PATCH": 1}, "billbee": {"GET": 2, "PUT": 1}}
        assert scenario["upstream_calls_per_change"] == calls[scenario["system"]]
        assert [(r["server"], r["rep"]) for r in scenario["runs"]] == [
            ("reference", 1), ("gateway", 1)
        ]
        for run in scenario["runs"]:
            assert run["problems"] == []
            # both servers ran as two processes (and a parent that serves nothing)
            assert run["processes"] == 2 and len(run["cpu_seconds_by_process"]) == 3
            assert run["throughput"]["connections"] == 4
            assert run["latency"]["connections"] == 1
            applied = 0
            for part in ("throughput", "latency"):
                wrk = run[part]
                assert wrk["requests"] > 0
                # every answer counted by patch.lua, all 200 with "applied": true
                assert wrk["statuses"] == {"200": wrk["requests"]}
                assert wrk["applied"] == wrk["requests"]
                applied += wrk["applied"]
            upstream = run["upstream"]
            assert applied <= upstream[method] <= applied + 5  # 4 + 1 in flight at most
            reads = calls[scenario["system"]]["GET"]
            assert upstream["GET"] == reads * upstream[method]
            assert sum(upstream.values()) == (reads + 1) * upstream[method]  # nothing else
            answers += applied
            writes += upstream[method]
            if run["server"] == "gateway":
                audit = run["audit"]
                assert audit["chain_ok"] is True
                assert audit["entries_by_kind"] == {
                    "intent/update": upstream[method],
                    "outcome/update/applied": upstream[method],
                }
                assert audit["intents_without_one_outcome"] == 0
                audited += audit["entries_verified"]
            else:
                assert "audit" not in run
    assert results["answers_checked"] == answers
    assert results["upstream_writes_checked"] == writes
    assert results["audit_entries_checked"] == audited == 2 * sum(
        r["upstream"][m] for s in results["scenarios"] for r in s["runs"]
        for m in ("PATCH", "PUT") if r["server"] == "gateway"
    )


def test_the_results_have_the_documented_shape(smoke: tuple[dict[str, Any], Path]) -> None:
    results, out = smoke
    machine = results["machine"]
    assert machine["cpu_model"] and machine["cpus"] >= 1 and machine["cpus_usable"] >= 1
    assert machine["python"].count(".") == 2 and len(machine["git_commit"]) == 40
    for key in ("load_before", "load_after"):
        assert len(results[key]) == 3 and all(isinstance(x, float | int) for x in results[key])
    assert results["date"] and results["wrk"].startswith("wrk")
    assert results["command"].startswith("python -m bench.gateway_bench")
    assert results["settings"]["allowed_non_2xx"] == 0
    assert results["settings"]["gateway_workers"] == 2
    assert results["settings"]["reference_processes"] == 2
    for scenario in results["scenarios"]:
        summary = scenario["summary"]
        assert summary["ratio"] > 0 and summary["ratio_pairs"] == [summary["ratio"]]
        assert summary["ratio_of_medians"] > 0
        for server in ("reference", "gateway"):
            part = summary[server]
            assert part["rps"] > 0 and part["c1_rps"] > 0
            assert part["p50_ms"] <= part["p99_ms"]
            assert part["c1_p50_ms"] <= part["c1_p99_ms"]
        assert isinstance(summary["added_p50_ms"], float)
        assert isinstance(summary["added_p99_ms"], float)
        for run in scenario["runs"]:
            assert len(run["load_before"]) == len(run["load_after"]) == 3
            # the server's CPU per answer is recorded (its value is not asserted)
            assert isinstance(run["throughput"]["cpu_ms_per_answer"], float)
            latency = run["throughput"]["latency_ms"]
            assert set(latency) == {"min", "mean", "max", "stdev", "p50", "p90", "p99", "p99.9"}
    assert scenario["customers"]["chosen"] > 0
    keycom = results["scenarios"][0]["customers"]
    assert keycom["left_out"] == {"record_restricted": 10_000 - keycom["chosen"]}
    table = (out / "gateway.md").read_text()
    assert "| keycom / sqlite |" in table and "| billbee / sqlite |" in table
    assert "Load average" in table and machine["cpu_model"] in table
    assert "Gateway workers: 2 (the reference: 2 processes)." in table
    # the floor of the added latency: one durable commit per store, one at a time
    floor = results["sync_floor"]["sqlite"]
    assert floor["commits"] == 200 and 0 < floor["p50_ms"] <= floor["p99_ms"]
    assert "One durable commit, one at a time" in table and "sqlite p50" in table
    assert not (out / "gateway.png").exists()  # --no-plot


def test_the_bench_fails_when_the_answers_are_refused(tmp_path: Path) -> None:
    """Values the policy refuses (422 for every change): the bench must say so and fail,
    even though the reference proxy, having no policy, applied them all."""
    done = run_bench(tmp_path, "--systems", "keycom", "--invalid-values", "--workers", "1")
    assert done.returncode == 1
    assert "BENCH FAILED" in done.stderr
    assert "answers are not 2xx (by status: {'422':" in done.stderr
    results = json.loads((tmp_path / "gateway.json").read_text())
    assert results["passed"] is False
    runs = results["scenarios"][0]["runs"]
    assert [r["server"] for r in runs] == ["reference", "gateway"]
    assert [r["processes"] for r in runs] == [1, 1]  # one process each
    assert [len(r["cpu_seconds_by_process"]) for r in runs] == [1, 1]
    assert runs[0]["problems"] == []  # the reference wrote them all
    refused = runs[1]["throughput"]
    assert refused["statuses"] == {"422": refused["requests"]} and refused["applied"] == 0
    assert runs[1]["upstream"]["PATCH"] == 0
    assert any("not 2xx" in p for p in results["problems"])
    assert not (tmp_path / "gateway.md").exists()  # no table from a failed run
