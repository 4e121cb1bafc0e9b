"""``bench/policy_micro.py`` (docs/performance.md, issue 11 branch ``i11-pol``). Shape
only: timings are not asserted."""

from __future__ import annotations

import math

import pytest

from bench import policy_micro

PIECES = ["mask", "state", "retention", "validate", "decide"]


def test_a_brief_run_times_every_piece_of_both_systems() -> None:
    results = policy_micro.measure(["keycom", "billbee"], number=20, repeat=1)
    assert list(results) == ["keycom", "billbee"]
    for row in results.values():
        assert list(row) == PIECES
        assert all(math.isfinite(us) and us >= 0 for us in row.values())


def test_the_command_prints_one_line_per_system(capsys: pytest.CaptureFixture[str]) -> None:
    assert policy_micro.main(["--number", "5", "--repeat", "1", "--systems", "keycom"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("policy side of a change")
    assert out[1].startswith("keycom ") and all(piece in out[1] for piece in PIECES)
