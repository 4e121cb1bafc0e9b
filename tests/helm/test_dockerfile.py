"""The Dockerfile is what the chart expects: no engine builds it here, so what can be read
is checked - stages, user, entrypoint, paths, no compilers or caches in the final stage."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.helm.conftest import CHART, ROOT, Helm

VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def stages() -> list[list[dict[str, Any]]]:
    """The Dockerfile's instructions, split into stages."""
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    out: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def values_of(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def test_two_stages_build_then_slim_runtime(stages: list[list[dict[str, Any]]]) -> None:
    assert len(stages) == 2
    build, runtime = (values_of(s, "FROM")[0] for s in stages)
    assert build.endswith(" AS build") and "slim" not in build  # compilers live here
    assert runtime.endswith(" AS runtime") and "-slim" in runtime
    assert any("pip wheel" in run for run in values_of(stages[0], "RUN"))


def test_final_stage_has_no_compilers_caches_or_source(
    stages: list[list[dict[str, Any]]],
) -> None:
    runtime = stages[1]
    runs = " ".join(values_of(runtime, "RUN"))
    assert "apt-get" not in runs and "gcc" not in runs and "build-essential" not in runs
    assert "--no-cache-dir" in runs and "--no-index" in runs
    assert "from=build" in runs  # the wheels are bind-mounted, never copied into a layer
    assert values_of(runtime, "COPY") == []  # no source tree in the image
    assert values_of(runtime, "HEALTHCHECK") == []  # Kubernetes probes do that
    env = " ".join(values_of(runtime, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # nothing written under a read-only root


def test_user_is_the_charts_fixed_non_root_uid(stages: list[list[dict[str, Any]]]) -> None:
    (user,) = values_of(stages[1], "USER")
    uid, gid = (int(part) for part in user.split(":"))  # numeric: runAsNonRoot can check it
    assert uid != 0 and gid != 0
    pod, container = VALUES["podSecurityContext"], VALUES["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (uid, gid, gid)
    assert (container["runAsUser"], container["runAsGroup"]) == (uid, gid)
    runs = " ".join(values_of(stages[1], "RUN"))
    assert f"--uid {uid}" in runs and f"--gid {gid}" in runs


def test_entrypoint_is_the_console_script_and_the_chart_passes_its_arguments(
    stages: list[list[dict[str, Any]]], helm: Helm
) -> None:
    runtime = stages[1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (entrypoint,) = values_of(runtime, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["gdpr-gateway"] and "gdpr-gateway" in scripts
    (cmd,) = values_of(runtime, "CMD")
    assert values_of(runtime, "STOPSIGNAL") == ["SIGTERM"]
    rendered = helm.scenario("default")
    gateway = rendered.deployment["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in gateway  # the image's ENTRYPOINT runs
    assert gateway["args"] == json.loads(cmd)  # the same serve --config path as the image
    (exposed,) = values_of(runtime, "EXPOSE")
    assert int(exposed) == VALUES["service"]["port"] == gateway["ports"][0]["containerPort"]


def test_build_context_holds_what_the_build_copies(stages: list[list[dict[str, Any]]]) -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # everything else stays out (.venv, .git, tests, .tools, state)
    for copy in values_of(stages[0], "COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert source in allowed, source
            assert (ROOT / source).exists(), source


def test_the_build_copies_every_package_the_project_installs(
    stages: list[list[dict[str, Any]]],
) -> None:
    """A package left out of the image fails at the first import in a pod, not here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in included}
    copied = {copy.split()[0] for copy in values_of(stages[0], "COPY")}
    assert packages <= copied, sorted(packages - copied)
