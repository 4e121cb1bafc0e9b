"""Every ci/ scenario: `helm lint --strict`, and every rendered manifest validated against
the Kubernetes schemas by kubernetes-validate --strict, at the oldest and newest version it
ships schemas for. The prometheus-operator kinds have no schema there: their rules go
through promtool (test_alerts.py) and their wiring is checked in test_chart_render.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from tests.helm.conftest import CHART, SCENARIOS, Helm, Rendered, scenario_file

KUBERNETES_VERSIONS = ("1.25", "1.37")
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm: Helm, scenario: str) -> None:
    done = helm.run("lint", "--strict", str(CHART), "-f", str(scenario_file(scenario)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_validate_against_the_kubernetes_schemas(
    scenarios: dict[str, Rendered], scenario: str, version: str, tmp_path: Path
) -> None:
    rendered = scenarios[scenario]
    manifest = tmp_path / f"{scenario}.yaml"
    manifest.write_text(rendered.text)
    done = subprocess.run(  # noqa: S603 - the venv's own console script
        [str(VALIDATE), "--strict", "--kubernetes-version", version, str(manifest)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    errors = [line for line in lines if line.startswith("ERROR")]
    assert done.returncode == 0 and not errors, "\n".join(errors or lines)
    passed = [line for line in lines if " passed for resource " in line]
    built_in = [d for d in rendered.docs if d["kind"] not in CRD_KINDS]
    assert len(passed) == len(built_in), "\n".join(lines)
    for line in lines:
        if line.startswith("WARN"):  # only the operator's kinds may lack a schema
            kind = re.search(r"schema for kind (\w+)", line)
            assert kind and kind.group(1) in CRD_KINDS, line


def test_kubernetes_validate_is_the_version_with_1_37_schemas() -> None:
    done = subprocess.run(  # noqa: S603
        [str(VALIDATE), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert Version(done.stdout.strip().split()[-1]) >= Version("1.37"), done.stdout
