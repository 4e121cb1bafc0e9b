"""Every answer of a bench run is checked; a run whose answers are not the intended fails.

Per server run (warm-up, throughput and one-at-a-time wrk runs against one process):

* wrk: no socket error and no answer slower than its timeout; every answer counted by
  ``bench/patch.lua``'s ``response()``; at most ``ALLOWED_NON_2XX`` answers that are not
  2xx (the customers are chosen so that none is expected: ``bench/load.py``); every 2xx
  body says ``"applied": true`` (a 200 that changed nothing is not the measured work);
* the upstream emulator (``/_emulator/stats``): one write per applied answer - at least
  as many writes as applied answers, and no more than those plus the requests that were
  still in flight when wrk stopped (one per connection per wrk run) - of the intended
  method only, and ``reads_per_change`` GETs per write, for the reference proxy and the
  gateway alike: both make the same upstream calls;
* the gateway's audit log (``gdpr-gateway audit verify`` and ``audit export``): the chain
  verifies, and it holds exactly one ``update`` intent and one ``applied`` outcome naming
  it per upstream write, and nothing else.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import run_cli

#: answers other than 2xx a run may have (see the module docstring): none is expected
ALLOWED_NON_2XX = 0
WRITE_METHODS = ("PUT", "PATCH", "POST", "DELETE")


def _is_2xx(status: str) -> bool:
    return 200 <= int(status) < 300


def check_answers(label: str, result: dict[str, Any]) -> list[str]:
    """Problems with the answers of one wrk run."""
    problems = []
    what = f"{label} ({result['connections']} connection(s))"
    errors = {k: v for k, v in result["errors"].items() if k != "status" and v}
    if errors:
        problems.append(f"{what}: wrk socket errors or timeouts {errors}")
    statuses: dict[str, int] = result["statuses"]
    counted = sum(statuses.values())
    if result["requests"] == 0:
        problems.append(f"{what}: no answer at all")
    if counted != result["requests"]:
        problems.append(
            f"{what}: {result['requests']} answers but {counted} seen by response()"
        )
    ok = sum(n for status, n in statuses.items() if _is_2xx(status))
    refused = {s: n for s, n in statuses.items() if not _is_2xx(s)}
    if sum(refused.values()) > ALLOWED_NON_2XX:
        problems.append(
            f"{what}: {sum(refused.values())} of {counted} answers are not 2xx "
            f"(by status: {refused}; allowed: {ALLOWED_NON_2XX})"
        )
    if result["applied"] != ok:
        problems.append(f"{what}: {ok - result['applied']} of {ok} 2xx answers did not apply")
    return problems


def check_upstream(
    label: str,
    counts: dict[str, int],
    *,
    applied: int,
    in_flight: int,
    write_method: str,
    reads_per_change: int,
) -> list[str]:
    """Problems with the upstream calls the emulator counted for one server run."""
    problems = []
    writes = counts.get(write_method, 0)
    others = {m: counts.get(m, 0) for m in WRITE_METHODS if m != write_method and counts.get(m)}
    if others:
        problems.append(f"{label}: unexpected upstream writes {others}")
    if not applied <= writes <= applied + in_flight:
        problems.append(
            f"{label}: {writes} upstream {write_method}s for {applied} applied answers "
            f"(at most {in_flight} more may have been in flight when wrk stopped)"
        )
    if counts.get("GET", 0) != reads_per_change * writes:
        problems.append(
            f"{label}: {counts.get('GET', 0)} upstream GETs for {writes} writes; "
            f"expected {reads_per_change} per change"
        )
    return problems


_VERIFIED = re.compile(r"^entries checked: (\d+)$", re.MULTILINE)


def inspect_audit(config: Path, export_to: Path) -> dict[str, Any]:
    """Verify the chain of a stopped gateway and count its entries by kind."""
    out = run_cli("audit", "verify", "--config", str(config))  # exits non-zero if broken
    match = _VERIFIED.search(out)
    run_cli("audit", "export", "--config", str(config), "--format", "jsonl",
            "--output", str(export_to))
    intents: set[str] = set()
    kinds: Counter[str] = Counter()
    closing: list[str] = []
    with export_to.open(encoding="utf-8") as entries:
        for line in entries:
            entry = json.loads(line)
            if entry["phase"] == "intent":
                kinds[f"intent/{entry['action']}"] += 1
                intents.add(entry["audit_id"])
            else:
                kinds[f"outcome/{entry['action']}/{entry['outcome']}"] += 1
                if entry.get("intent_id"):
                    closing.append(entry["intent_id"])
    export_to.unlink()
    closed = Counter(closing)
    return {
        "chain_ok": "chain OK" in out,
        "entries_verified": int(match.group(1)) if match else None,
        "entries_by_kind": dict(sorted(kinds.items())),
        "intents_without_one_outcome": sum(1 for i in intents if closed[i] != 1),
        "outcomes_without_intent": sum(n for i, n in closed.items() if i not in intents),
    }


def check_audit(label: str, audit: dict[str, Any], *, writes: int) -> list[str]:
    """One ``update`` intent and one ``applied`` outcome per upstream write, nothing else."""
    problems = []
    if not audit["chain_ok"]:
        problems.append(f"{label}: the audit chain does not verify")
    expected = {"intent/update": writes, "outcome/update/applied": writes} if writes else {}
    if audit["entries_by_kind"] != expected:
        problems.append(
            f"{label}: audit entries {audit['entries_by_kind']}, expected {expected} "
            f"(one intent and one applied outcome per upstream write)"
        )
    if audit["entries_verified"] != 2 * writes:
        problems.append(f"{label}: verify checked {audit['entries_verified']} entries, "
                        f"expected {2 * writes}")
    if audit["intents_without_one_outcome"] or audit["outcomes_without_intent"]:
        problems.append(
            f"{label}: {audit['intents_without_one_outcome']} intents without exactly one "
            f"outcome, {audit['outcomes_without_intent']} outcomes naming no intent"
        )
    return problems
