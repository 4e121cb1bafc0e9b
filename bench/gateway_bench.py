"""End to end: the gateway against a reference proxy making the same upstream calls.

    python -m bench.gateway_bench [--systems keycom,billbee] [--stores sqlite,postgres]
        [--reps 3] [--duration 10] [--warmup 2] [--connections 32] [--latency-duration 5]
        [--out-dir bench/results] [--update-docs] [--no-plot] [--no-conflict-check]
        [--workers N]

Starts the four emulators (billbee's rate limit off) in a process of their own. Then, per
scenario (system x audit store), ``--reps`` times in turn (A B A B): the reference proxy
(``bench/bare_proxy.py --processes N``), then the gateway (``gdpr-gateway serve --config
--workers N``; the same N processes for both, each listening on the port with
``SO_REUSEPORT``) with the full shipped policy and a durable audit log on a fresh SQLite
file or a fresh PostgreSQL database at 127.0.0.1:5432). Each server gets a warm-up, a
throughput run (``--connections``) and a run one request at a time, all with wrk
(``bench/patch.lua``), once all its processes listen; then it is stopped and every answer
is checked (``bench/checks.py``). A run whose answers are not the intended stops the
bench with exit status 1 and says why.

Writes ``OUT/gateway.json`` (machine, load, every run, summaries), ``OUT/gateway.md`` (the
table), ``OUT/gateway.png`` (the plot) and, with ``--update-docs``, the table into
docs/performance.md. ``--invalid-values`` sends values the policy refuses: the bench must
then fail (the checker's own test).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import checks, report, sync_floor
from bench.load import (
    INVALID_VALUE_FORMAT,
    WORKLOADS,
    Workload,
    eligible_customers,
    run_wrk,
    wrk_path,
    wrk_version,
)
from bench.procs import (
    BenchError,
    Emulators,
    audit_store,
    cli,
    cpu_by_process,
    cpu_seconds,
    free_port,
    gateway_config,
    postgres_version,
    run_cli,
    server,
)

STORES = ("sqlite", "postgres")
#: the processes of each server (the gateway's workers, the reference's) unless --workers
#: says otherwise: chosen by measurement on the 2-CPU bench machine (docs/performance.md,
#: "Two workers, the service side": 2 measured no better in interleaved rounds)
DEFAULT_WORKERS = 1
STAMP_WARMUP, STAMP_THROUGHPUT, STAMP_LATENCY = 1, 2, 3
_LOG_ERROR = re.compile(r'"level": "(ERROR|CRITICAL)"|^Traceback', re.MULTILINE)


def _list(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--systems", type=_list(tuple(WORKLOADS)), default=list(WORKLOADS))
    parser.add_argument("--stores", type=_list(STORES), default=list(STORES))
    parser.add_argument("--reps", type=int, default=3, help="A B pairs per scenario")
    parser.add_argument("--duration", type=int, default=10, help="seconds of throughput")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before it (0: none)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-duration", type=int, default=5,
                        help="seconds one request at a time (0: none)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="processes of each server: the gateway's workers (serve "
                        "--workers) and the reference's (bare_proxy --processes); default "
                        f"{DEFAULT_WORKERS}: docs/performance.md")
    parser.add_argument("--no-conflict-check", action="store_true",
                        help="gateway without the re-read; the reference then reads once")
    parser.add_argument("--out-dir", type=Path, default=report.ROOT / "bench" / "results")
    parser.add_argument("--update-docs", action="store_true",
                        help="write the table into docs/performance.md")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    parser.add_argument("--invalid-values", action="store_true",
                        help="send values the policy refuses: the checks must fail")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.duration < 1 or args.connections < 1 or args.workers < 1:
        parser.error("--reps, --duration, --connections and --workers must be at least 1")
    return args


class Bench:
    """One bench run: the emulators, the scenarios, and what was checked."""

    def __init__(self, args: argparse.Namespace, folder: Path, emulators: Emulators) -> None:
        self.args = args
        self.folder = folder
        self.emulators = emulators
        self.conflict_check = not args.no_conflict_check
        self.counted = {"answers": 0, "upstream_writes": 0, "audit_entries": 0}

    def _wrk_runs(self, label: str, url: str, workload: Workload,
                  ids_file: Path, pid: int) -> dict[str, Any]:
        """Warm-up, throughput, one at a time; the first with wrong answers ends them.
        Each run also records the server's CPU per answer (``cpu_ms_per_answer``: user
        + system time of its process and children over the run, by the answers)."""
        a = self.args
        plan = [("warmup", STAMP_WARMUP, a.connections, a.warmup),
                ("throughput", STAMP_THROUGHPUT, a.connections, a.duration),
                ("latency", STAMP_LATENCY, 1, a.latency_duration)]
        runs: dict[str, Any] = {}
        for part, stamp, connections, seconds in plan:
            if not seconds:
                continue
            cpu_before = cpu_seconds(pid)
            runs[part] = run_wrk(
                url, workload, ids_file, stamp=stamp, connections=connections,
                seconds=seconds, value_format=INVALID_VALUE_FORMAT if a.invalid_values else None,
            )
            used = cpu_seconds(pid) - cpu_before
            runs[part]["cpu_ms_per_answer"] = round(
                1000.0 * used / max(1, runs[part]["requests"]), 3
            )
            if checks.check_answers(label, runs[part]):
                break
        return runs

    def server_run(
        self, kind: str, workload: Workload, store: str, rep: int, ids_file: Path
    ) -> dict[str, Any]:
        """Start one server, load it, stop it, check everything it answered and did."""
        label = f"{kind} {workload.system}/{store} rep {rep}"
        port = free_port()
        processes = self.args.workers
        log = self.folder / f"{kind}-{workload.system}-{store}-{rep}.log"
        record: dict[str, Any] = {"server": kind, "rep": rep, "load_before": report.loadavg()}
        with contextlib.ExitStack() as stack:
            if kind == "reference":
                urls = self.emulators.urls
                argv = [sys.executable, "-m", "bench.bare_proxy", "--port", str(port),
                        "--billbee", urls["billbee"], "--keycom", urls["keycom"], "--uvloop",
                        "--processes", str(processes)]
                argv += ["--reread"] if self.conflict_check else []
            else:
                url = stack.enter_context(audit_store(store, self.folder))
                config = gateway_config(
                    self.folder, port=port, audit_url=url, urls=self.emulators.urls,
                    conflict_check=not self.args.no_conflict_check,
                )
                run_cli("db", "upgrade", "--config", str(config))
                argv = [cli(), "serve", "--config", str(config),
                        "--workers", str(processes)]
            self.emulators.reset()
            with server(argv, port, label, log, listeners=processes) as proc:
                cpu_before = cpu_by_process(proc.pid)
                runs = self._wrk_runs(
                    label, f"http://127.0.0.1:{port}", workload, ids_file, proc.pid
                )
                self.emulators.settled_requests(workload.system)
                cpu_after = cpu_by_process(proc.pid)
            order = sorted(cpu_after, key=lambda p: (p != proc.pid, p))  # the root first
            by_process = [cpu_after[p] - cpu_before.get(p, 0.0) for p in order]
            cpu = sum(by_process)
            answers = sum(run["requests"] for run in runs.values())
            # the server's processes (a supervisor or parent and its workers): CPU per
            # answer, less moved by the machine's load than req/s; and each process's share
            # (the first is the one started; with N > 1 it serves nothing)
            record["processes"] = processes
            record["cpu_seconds_by_process"] = [round(c, 3) for c in by_process]
            record["cpu_seconds"] = round(cpu, 3)
            record["cpu_ms_per_answer"] = round(1000 * cpu / answers, 3) if answers else None
            record.update(runs)
            record["load_after"] = report.loadavg()
            record["upstream"] = self.emulators.requests(workload.system)
            record["log_errors"] = len(_LOG_ERROR.findall(log.read_text(errors="replace")))
            answered = not any(checks.check_answers(label, run) for run in runs.values())
            if kind == "gateway" and answered:  # wrong answers: fail now, audit unread
                record["audit"] = checks.inspect_audit(config, self.folder / "export.jsonl")
        record["problems"] = self._check(label, record, workload)
        return record

    def _check(self, label: str, record: dict[str, Any], workload: Workload) -> list[str]:
        wrk_runs = [record[k] for k in ("warmup", "throughput", "latency") if k in record]
        problems = [p for run in wrk_runs for p in checks.check_answers(label, run)]
        writes = record["upstream"].get(workload.write_method, 0)
        problems += checks.check_upstream(
            label, record["upstream"],
            applied=sum(run["applied"] for run in wrk_runs),
            in_flight=sum(run["connections"] for run in wrk_runs),
            write_method=workload.write_method,
            reads_per_change=workload.reads_per_change(self.conflict_check),
        )
        if "audit" in record:
            problems += checks.check_audit(label, record["audit"], writes=writes)
            self.counted["audit_entries"] += record["audit"]["entries_verified"] or 0
        if record["log_errors"]:
            problems.append(f"{label}: {record['log_errors']} error lines in its log")
        self.counted["answers"] += sum(run["requests"] for run in wrk_runs)
        self.counted["upstream_writes"] += writes
        return problems

    def scenario(self, workload: Workload, store: str, ids_file: Path,
                 results: dict[str, Any], customers: dict[str, Any]) -> list[str]:
        scenario: dict[str, Any] = {
            "system": workload.system, "store": store, "field": workload.field,
            "upstream_calls_per_change": {
                "GET": workload.reads_per_change(self.conflict_check),
                workload.write_method: 1,
            },
            "customers": customers, "runs": [],
        }
        results["scenarios"].append(scenario)
        for rep in range(1, self.args.reps + 1):
            for kind in ("reference", "gateway"):  # A B A B
                run = self.server_run(kind, workload, store, rep, ids_file)
                scenario["runs"].append(run)
                _print_run(run, workload.system, store)
                if run["problems"]:
                    return list(run["problems"])
        report.summarise(scenario)
        return []


def _print_run(run: dict[str, Any], system: str, store: str) -> None:
    thr, lat = run.get("throughput") or run["warmup"], run.get("latency")
    line = (f"{run['server']:9} {system:7} {store:8} rep {run['rep']} "
            f"({run.get('processes', 1)} proc): "
            f"{thr['rps']:8.1f} req/s  cpu {thr['cpu_ms_per_answer']:.2f} ms/answer  "
            f"p50 {thr['latency_ms']['p50']:.2f} ms  "
            f"p99 {thr['latency_ms']['p99']:.2f} ms  answers {thr['statuses']}")
    if lat:
        line += (f" | 1 at a time p50 {lat['latency_ms']['p50']:.2f} ms "
                 f"p99 {lat['latency_ms']['p99']:.2f} ms")
    print(line + f"  cpu {run.get('cpu_ms_per_answer')} ms/answer  load {run['load_after'][0]}",
          flush=True)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: servers stopped, databases dropped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        wrk_path()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    command = "python -m bench.gateway_bench " + shlex.join(sys.argv[1:] if argv is None
                                                             else argv)
    results: dict[str, Any] = {
        "schema": 1,
        "kind": "gateway_bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command.strip(),
        "settings": {
            "systems": args.systems, "stores": args.stores, "reps": args.reps,
            "duration_s": args.duration, "warmup_s": args.warmup,
            "connections": args.connections, "latency_duration_s": args.latency_duration,
            "gateway_workers": args.workers, "reference_processes": args.workers,
            "conflict_check": not args.no_conflict_check, "invalid_values": args.invalid_values,
            "wrk_threads": 1, "allowed_non_2xx": checks.ALLOWED_NON_2XX,
        },
        "machine": report.machine(),
        "wrk": wrk_version(),
        "postgres": postgres_version() if "postgres" in args.stores else None,
        "load_before": report.loadavg(),
        "scenarios": [],
    }
    problems: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, \
                Emulators(Path(tmp) / "emulators.log") as emulators:
            results["sync_floor"] = sync_floor.measure(args.stores, Path(tmp))
            bench = Bench(args, Path(tmp), emulators)
            for system in args.systems:
                workload = WORKLOADS[system]
                chosen = eligible_customers(workload)
                ids_file = Path(tmp) / f"{system}-ids.txt"
                ids_file.write_text("\n".join(map(str, chosen.ids)) + "\n")
                customers = {"chosen": len(chosen.ids), "left_out": chosen.excluded}
                for store in args.stores:
                    problems = bench.scenario(workload, store, ids_file, results, customers)
                    if problems:
                        break
                if problems:
                    break
            counted = bench.counted
    except BenchError as exc:
        problems = [str(exc)]
        counted = {"answers": 0, "upstream_writes": 0, "audit_entries": 0}
    results["load_after"] = report.loadavg()
    results["answers_checked"] = counted["answers"]
    results["upstream_writes_checked"] = counted["upstream_writes"]
    results["audit_entries_checked"] = counted["audit_entries"]
    results["passed"] = not problems
    results["problems"] = problems
    out: Path = args.out_dir
    report.write_json(results, out / "gateway.json")
    if problems:
        print("\nBENCH FAILED: the answers were not the ones meant to be measured:",
              file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print(f"(details: {out / 'gateway.json'})", file=sys.stderr)
        return 1
    plot_name = None if args.no_plot else "gateway.png"
    if plot_name:
        report.plot(results, out / plot_name)
    table = report.markdown(results, plot_name)
    (out / "gateway.md").write_text(table, encoding="utf-8")
    if args.update_docs:
        docs = report.ROOT / "docs"
        doc_plot = None if plot_name is None else os.path.relpath(out / plot_name, docs)
        report.update_docs(report.ROOT / "docs" / "performance.md",
                           report.markdown(results, doc_plot))
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
