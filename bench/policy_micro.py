"""Micro-benchmark of the policy side of one change (issue 11): per call, in-process.

    python -m bench.policy_micro [--number 4000] [--repeat 7] [--systems keycom,billbee]

Prints the best per-call CPU time (µs, ``time.process_time``) of what the gateway asks
the policy engine for on each change of the bench's load (bench/load.py: keycom changes
``phone``, billbee ``Tel1``), on generated records of the emulators:

* ``mask``: the answer's record masked for an editor (``PolicyEngine.mask``);
* ``state``: the record-state rules evaluated on the record (``record_state``);
* ``retention``: the audit retention of the change's sealed paths
  (``CompiledPolicy.retention_days``, given a generator as the gateway gives it);
* ``validate`` and ``decide`` of the one-field patch, for scale.

The same script runs on any commit since issue 11 (it uses only those public calls), so
a before and after is two runs; compare code with bench/cpu_ab (interleaved), not with
two runs of this one on a shared machine. Not a test assertion.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from common.vocabulary import Role
from policies import PolicyEngine, Principal, load_policy_set
from policies.state import record_state
from service.emulators import billbee, keycom

#: system -> (the field the bench's load changes, a new value, the record generator)
CASES: dict[str, tuple[str, str, Callable[[int], dict[str, Any]]]] = {
    "keycom": ("phone", "+358 40 7654321", keycom.generate),
    "billbee": ("Tel1", "+49 30 7654321", billbee.generate),
}
FIRST_ID = {"keycom": 100001, "billbee": 100001}
RECORDS = 16  # generated records cycled through (a few of them restricted or archived)


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best per-call CPU time of this process (``process_time``: the machine's other
    load does not count)."""
    timings = timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)
    return min(timings) / number * 1e6


def _cycle(calls: list[Callable[[], object]]) -> Callable[[], object]:
    """One call per timing step, going round ``calls`` (different records)."""
    state = {"i": 0}
    count = len(calls)

    def step() -> object:
        i = state["i"]
        state["i"] = i + 1 if i + 1 < count else 0
        return calls[i]()

    return step


def _pieces(engine: PolicyEngine, system: str) -> dict[str, list[Callable[[], object]]]:
    """The calls timed for ``system``, each over the generated records where it reads one."""
    field, value, generate = CASES[system]
    editor = Principal("bench", frozenset({Role.EDITOR}), frozenset({"*"}))
    policy = engine.policy(system)
    records = [generate(FIRST_ID[system] + i) for i in range(RECORDS)]
    patch = {field: value}
    # as service.change_steps.intent_for asks: the sealed paths of the protection
    protection = {field: "personal"}
    sealed = frozenset({"personal", "restricted"})
    return {
        "mask": [partial(engine.mask, system, r, editor.roles) for r in records],
        "state": [partial(record_state, policy, r) for r in records],
        "retention": [
            lambda: policy.retention_days(
                path for path, level in protection.items() if level in sealed
            )
        ],
        "validate": [lambda: engine.validate(system, patch)],
        "decide": [
            partial(engine.decide, system, r, patch, editor, "customer_service")
            for r in records
        ],
    }


def measure(systems: list[str], number: int, repeat: int) -> dict[str, dict[str, float]]:
    """{system: {piece: best µs per call}}; the cycling's own cost included in each (the
    same in every column, ~0.1 µs)."""
    engine = PolicyEngine(
        load_policy_set(), pseudonym_key=b"bench-pseudonym-key-0123456789ab", hash_salt=b"salt"
    )
    return {
        system: {
            name: best_us(_cycle(calls), number, repeat)
            for name, calls in _pieces(engine, system).items()
        }
        for system in systems
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy_micro")
    parser.add_argument("--number", type=int, default=4000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings; the best is kept")
    parser.add_argument("--systems", default="keycom,billbee")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in CASES]
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)} (known: {', '.join(CASES)})")
    results = measure(systems, args.number, args.repeat)
    print(f"policy side of a change, best of {args.repeat} x {args.number} calls, "
          "CPU µs per call")
    for system, row in results.items():
        print(f"{system:8s} " + "  ".join(f"{name} {us:5.2f}" for name, us in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
