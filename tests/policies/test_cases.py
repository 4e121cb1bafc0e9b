"""The golden cases: tests/policies/cases/*.yaml, one parametrised test.

A case is a request (roles, purpose, patch) against a record (pre_image) and what the
policy makes of it (expect). A valid patch gets a decision: ``allowed``, ``problem``,
``changed``, ``errors`` and the rest below. A patch the field table refuses gets no
decision at all: ``expect: {invalid: {path: code}}`` lists every field error, which the
gateway answers 422 ``validation_failed`` without reading the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from common.vocabulary import POLICY_PROBLEMS as PROBLEMS
from policies import PolicyEngine
from tests.policies.conftest import principal

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    out = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["cases"]:
            out.append(pytest.param(doc["system"], case, id=f"{doc['system']}: {case['name']}"))
    return out


CASES = _load()


@pytest.mark.parametrize(("system", "case"), CASES)
def test_golden_case(engine: PolicyEngine, system: str, case: dict[str, Any]) -> None:
    expect = case["expect"]
    errors = {e.path: e.code for e in engine.validate(system, case["patch"])}
    if "invalid" in expect:
        assert errors == expect["invalid"]
        assert set(expect) == {"invalid"}  # nothing is decided about an invalid patch
        return
    assert errors == {}  # otherwise a golden patch is a valid request
    decision = engine.decide(
        system, case["pre_image"], case["patch"], principal(*case["roles"]), case["purpose"]
    )
    assert decision.allowed is expect["allowed"]
    assert decision.problem == expect.get("problem")
    if "changed" in expect:
        assert list(decision.changed) == expect["changed"]
    for path, level in expect.get("protection", {}).items():
        assert decision.protection[path] == level, path
    got_errors = {e.path: e.code for e in decision.errors}
    for path, code in expect.get("errors", {}).items():
        assert got_errors.get(path) == code, path
    if "error_count" in expect:
        assert len(decision.errors) == expect["error_count"]
    for path in expect.get("not_errors", []):
        assert path not in got_errors, path
    for path, value in expect.get("before", {}).items():
        assert decision.before[path] == value, path
    for path, value in expect.get("after", {}).items():
        assert decision.after[path] == value, path
    if "merged" in expect:
        if expect["merged"] is None:
            assert decision.merged is None
        else:
            assert decision.merged is not None
            for key, value in expect["merged"].items():
                assert decision.merged[key] == value, key
    for key in expect.get("merged_lacks", []):
        assert decision.merged is not None
        assert key not in decision.merged, key
    if not decision.allowed:
        assert decision.merged is None
        assert decision.problem in PROBLEMS
        assert decision.detail


def test_some_cases_show_refusals_of_the_field_table() -> None:
    systems = {c.values[0] for c in CASES if "invalid" in c.values[1]["expect"]}
    assert systems == {"keycom", "sedona", "timelog"}


def test_cases_cover_every_problem_decide_gives() -> None:
    seen = {c.values[1]["expect"].get("problem") for c in CASES}
    # forbidden is the gateway's (role or system scope), checked before decide()
    assert set(PROBLEMS) - {"forbidden"} <= seen


@pytest.mark.parametrize("system", ["billbee", "keycom", "sedona", "timelog"])
def test_each_system_has_cases_for_its_problems(system: str) -> None:
    seen = {c.values[1]["expect"].get("problem") for c in CASES if c.values[0] == system}
    expected = {None, "purpose_required", "purpose_not_allowed", "field_not_editable"}
    expected |= {
        "billbee": {"customer_archived", "would_clear_unknown_fields"},
        "timelog": {"would_clear_unknown_fields"},
        "sedona": {"would_clear_unknown_fields"},
        "keycom": {"record_restricted"},
    }[system]
    assert expected <= seen
