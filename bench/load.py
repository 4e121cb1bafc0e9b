"""What the bench sends: per system, the field it changes, values the policy accepts, the
customers it may change, and the wrk run that sends it (``bench/patch.lua``).

Customers are chosen so that no refusal is expected: every generated customer of the
emulator (ids 100000-109999) is put through the shipped policy's ``decide()`` for the
bench's caller (an editor, purpose customer_service) and kept only if it is allowed. On
keycom this leaves out the ~2 % of restricted records (409 ``record_restricted``); no
generated billbee customer is archived. So every answer is meant to be 200 with
``"applied": true``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import TOKEN, BenchError
from common.vocabulary import Role
from policies import PolicyEngine, Principal, load_policy_set
from service.emulators import billbee, keycom
from service.emulators.store import GENERATED_FIRST, GENERATED_LAST
from service.upstreams.billbee import BillbeeConnector
from service.upstreams.keycom import KeycomConnector

LUA = Path(__file__).resolve().parent / "patch.lua"
PURPOSE = "customer_service"
#: values the policies refuse (format: phone): the checker's own test (--invalid-values)
INVALID_VALUE_FORMAT = "bench value %d-%d"


@dataclass(frozen=True, slots=True)
class Workload:
    system: str
    field: str
    #: string.format pattern of (stamp, counter): a new, valid value per request
    value_format: str
    #: the one upstream write of a change (the gateway's and the reference's)
    write_method: str
    #: whether a change re-reads before its write (the edit-conflict check), as the
    #: system's connector says (``conflict_reread``, docs/upstreams.md)
    conflict_reread: bool

    def reads_per_change(self, conflict_check: bool) -> int:
        """The GETs of one change: the pre-image, and the re-read where there is one."""
        return 2 if conflict_check and self.conflict_reread else 1


WORKLOADS: dict[str, Workload] = {
    # native partial update: GET, PATCH of the field (no re-read: it cannot overwrite)
    "keycom": Workload(
        "keycom", "phone", "+358 %d %07d", "PATCH", KeycomConnector.conflict_reread
    ),
    # read-merge-write: GET, GET (conflict re-read), PUT of the merged whole record
    "billbee": Workload(
        "billbee", "Tel1", "+49 %d %07d", "PUT", BillbeeConnector.conflict_reread
    ),
}
_GENERATORS = {"keycom": keycom.generate, "billbee": billbee.generate}


@dataclass(frozen=True, slots=True)
class Customers:
    ids: list[int]
    #: generated customers left out, by the policy's problem code
    excluded: dict[str, int]


def eligible_customers(workload: Workload) -> Customers:
    """The generated customers the bench's caller may change (see the module docstring)."""
    engine = PolicyEngine(
        load_policy_set(), pseudonym_key=b"bench-pseudonym-key-0123456789ab", hash_salt=b"salt"
    )
    editor = Principal("bench", frozenset({Role.EDITOR}), frozenset({"*"}))
    probe = {workload.field: workload.value_format % (100, 1)}
    if engine.validate(workload.system, probe):
        raise BenchError(f"{workload.system}: the bench's own value is refused by the policy")
    generate = _GENERATORS[workload.system]
    ids: list[int] = []
    excluded: Counter[str] = Counter()
    for cid in range(GENERATED_FIRST, GENERATED_LAST + 1):
        decision = engine.decide(workload.system, generate(cid), probe, editor, PURPOSE)
        if decision.allowed and decision.changed:
            ids.append(cid)
        else:
            excluded[decision.problem or "no_change"] += 1
    return Customers(ids, dict(excluded))


def wrk_version() -> str:
    done = subprocess.run(  # noqa: S603 - fixed argv
        [wrk_path(), "-v"], capture_output=True, text=True, check=False
    )
    first = (done.stdout + done.stderr).splitlines()[0]
    return first.split(" Copyright")[0].strip()  # "wrk 4.1.0 [epoll]"


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed: apt-get install -y wrk (make bench does it)")
    return path


_RESULT = re.compile(r"^RESULT (\{.*\})$", re.MULTILINE)


def run_wrk(
    base_url: str,
    workload: Workload,
    ids_file: Path,
    *,
    stamp: int,
    connections: int,
    seconds: int,
    value_format: str | None = None,
    timeout_s: int = 10,
) -> dict[str, Any]:
    """One wrk run (one thread): its RESULT line, plus ``rps`` and milliseconds."""
    env = dict(
        os.environ,
        BENCH_SYSTEM=workload.system,
        BENCH_FIELD=workload.field,
        BENCH_VALUE_FORMAT=value_format or workload.value_format,
        BENCH_STAMP=str(stamp),
        BENCH_IDS_FILE=str(ids_file),
        BENCH_TOKEN=TOKEN,
        BENCH_PURPOSE=PURPOSE,
    )
    argv = [
        wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s",
        "-s", str(LUA), base_url,
    ]
    done = subprocess.run(  # noqa: S603 - fixed argv
        argv, capture_output=True, text=True, env=env, check=False
    )
    match = _RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise BenchError(f"wrk failed (exit {done.returncode}): {tail}")
    result: dict[str, Any] = json.loads(match.group(1))
    seconds_run = result["duration_us"] / 1e6
    result["rps"] = round(result["requests"] / seconds_run, 1) if seconds_run else 0.0
    result["latency_ms"] = {
        k: round(v / 1000.0, 3) for k, v in result.pop("latency_us").items()
    }
    result["statuses"] = {str(k): v for k, v in sorted(result["statuses"].items())}
    result["connections"] = connections
    return result
