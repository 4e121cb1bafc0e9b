"""The PrometheusRule's alerts through promtool: `check rules` on the rendered groups, and
`test rules` with the unit tests in alerts_test.yaml. Each alert carries a runbook that
docs/deploy.md explains under a heading of the alert's name."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import ROOT, Rendered, tool

TESTS = Path(__file__).with_name("alerts_test.yaml")


@pytest.fixture(scope="module")
def groups(scenarios: dict[str, Rendered]) -> list[dict[str, Any]]:
    rule = scenarios["monitoring"].one("PrometheusRule")
    found: list[dict[str, Any]] = rule["spec"]["groups"]
    return found


def alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if "alert" in r]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own binary, fixed arguments
        [str(tool("promtool")), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_promtool_checks_the_rendered_rules(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    done = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts(groups))} rules found" in done.stdout


def test_promtool_unit_tests_of_every_alert(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    # The static description and runbook texts are checked below; the unit tests compare
    # the labels and the summary, which is templated from the alert's labels and value.
    groups = copy.deepcopy(groups)
    for rule in alerts(groups):
        rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    done = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_quiet(groups: list[dict[str, Any]]) -> None:
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for rule in alerts(groups):
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']} never fires in a test"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']} is never quiet"


def test_every_alert_has_a_runbook_explained_in_deploy_md(groups: list[dict[str, Any]]) -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    headings = {line.lstrip("#").strip() for line in deploy.splitlines() if line.startswith("#")}
    for rule in alerts(groups):
        name = rule["alert"]
        annotations = rule["annotations"]
        assert annotations["description"].strip() and annotations["runbook"].strip(), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert name in headings, f"docs/deploy.md has no heading {name}"
        anchor = name.lower()  # how the docs' heading is linked
        assert annotations["runbook_url"].endswith(f"/docs/deploy.md#{anchor}"), name
