"""``bench/upstream_path_bench.py``: the connector's Python work per change on fake
transports fed the emulator's real answers. Shape only: timings are not asserted."""

from __future__ import annotations

import pytest

from bench import upstream_path_bench


@pytest.mark.parametrize("system", ["keycom", "billbee"])
def test_each_system_reports_one_figure_per_round(
    system: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert upstream_path_bench.main(["--system", system, "--changes", "16", "--rounds", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{system} change (fetch + apply), Python path, us CPU:")
    figures = line.split(":", 1)[1].split("(best")[0].split()
    assert len(figures) == 2
    assert all(float(figure) > 0 for figure in figures)
