"""``bench/edge_micro.py``: CPU per call of the intent check, an answer's count and access
line, and an audit body's canonical text (docs/performance.md, issue 11, `i11-edge`).
Shape only: no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import edge_micro

ROOT = Path(__file__).resolve().parents[2]


def test_each_piece_is_measured_in_a_process_of_its_own() -> None:
    found = edge_micro.measure(ROOT, number=50, repeat=1)
    assert set(found) == set(edge_micro.PIECES)
    assert all(us > 0 for us in found.values())


def test_two_checkouts_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    assert edge_micro.main(["--against", str(ROOT), "--number", "20", "--repeat", "1",
                            "--rounds", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert [line[:2] for line in out] == ["A ", "B ", "B/"]
    assert all(piece in out[-1] for piece in edge_micro.PIECES)
