"""The chart through the real Helm: every ci/ scenario rendered once per session.

Helm and promtool are unpacked into ``.tools/bin`` by ``make tools`` (``make test`` does it
first); a missing tool fails the test naming that command - the chart is never skipped.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "gdpr-gateway"
TOOLS = ROOT / ".tools" / "bin"
RELEASE = "gw"
NAMESPACE = "gdpr"
FULLNAME = f"{RELEASE}-gdpr-gateway"
SCENARIOS = tuple(
    sorted(p.name.removesuffix("-values.yaml") for p in CHART.glob("ci/*-values.yaml"))
)
MONITORING_API = "monitoring.coreos.com/v1"


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make tools` (make test does it first)")
    return path


def scenario_file(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


@dataclass(frozen=True)
class Rendered:
    """One `helm template` output: the text and its documents."""

    text: str
    docs: tuple[dict[str, Any], ...]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}"
        return found[0]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["metadata"]["name"] == name]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    def config(self) -> dict[str, Any]:
        text = self.one("ConfigMap", FULLNAME)["data"]["config.yaml"]
        data: dict[str, Any] = yaml.safe_load(text)
        return data


class HelmError(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


@dataclass
class Helm:
    """Runs the real helm binary; renders are cached for the session."""

    binary: Path
    _cache: dict[tuple[Any, ...], Rendered] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own binary, fixed arguments
            [str(self.binary), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def template(
        self,
        values: Sequence[str] = (),
        sets: Mapping[str, str] = {},
        *,
        monitoring_api: bool = True,
    ) -> Rendered:
        key = (tuple(values), tuple(sorted(sets.items())), monitoring_api)
        if key not in self._cache:
            args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
            for v in values:
                args += ["-f", str(scenario_file(v)) if "/" not in v else v]
            for k, v in sets.items():
                args += [
                    "--set-string" if k.startswith("string:") else "--set",
                    f"{k.removeprefix('string:')}={v}",
                ]
            if monitoring_api:
                args += ["--api-versions", MONITORING_API]
            done = self.run(*args)
            if done.returncode != 0:
                raise HelmError(done.stderr)
            docs = tuple(d for d in yaml.safe_load_all(done.stdout) if d)
            self._cache[key] = Rendered(done.stdout, docs)
        return self._cache[key]

    def scenario(self, name: str) -> Rendered:
        return self.template([name])


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(tool("helm"))


@pytest.fixture(scope="session")
def scenarios(helm: Helm) -> dict[str, Rendered]:
    """Every ci/*-values.yaml scenario, rendered with the monitoring CRDs' API present."""
    return {name: helm.scenario(name) for name in SCENARIOS}


def pod_specs(rendered: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every workload: Deployment, Job and the test Pod."""
    for doc in rendered.docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]


def secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
