"""The dependency audit (deps/audit.py): the locked set, and that it can fail."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from deps.audit import ADVISORIES, LOCK, main, normalize, pins, problems, record

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")


def test_the_locked_set_has_no_known_advisory() -> None:
    done = subprocess.run(  # noqa: S603 - our own script, as make audit runs it
        [sys.executable, str(REPO / "deps" / "audit.py"), "check"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "no known advisory" in done.stdout


def test_a_pinned_package_with_an_advisory_fails_the_audit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["check", "--lock", str(FIXTURES / "lock.txt"),
                 "--advisories", str(FIXTURES / "advisories-vulnerable.json")])
    assert code == 1
    err = capsys.readouterr().err
    assert "aiohttp==3.9.1: PYSEC-2024-24, CVE-2024-23334" in err
    assert "fixed in: 3.9.2" in err and "pyyaml" not in err


def _with(advisories: dict[str, Any], name: str, **entry: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(advisories))
    copy["packages"][name].update(entry)
    return copy


def test_an_advisory_against_the_real_lock_fails_it() -> None:
    pinned = pins(LOCK.read_text(encoding="utf-8"))
    real = json.loads(ADVISORIES.read_text(encoding="utf-8"))
    vuln = {"id": "GHSA-test", "aliases": [], "fixed_in": ["99"], "withdrawn": None}
    bad = _with(real, "aiohttp", vulnerabilities=[vuln])
    assert problems(pinned, bad) == [f"aiohttp=={pinned['aiohttp']}: GHSA-test (fixed in: 99)"]
    withdrawn = _with(real, "aiohttp", vulnerabilities=[{**vuln, "withdrawn": "2024-01-01"}])
    assert problems(pinned, withdrawn) == []


def test_a_lock_changed_after_the_refresh_fails_until_refreshed() -> None:
    pinned = {**pins(LOCK.read_text(encoding="utf-8")), "newpkg": "1.0"}
    real = json.loads(ADVISORIES.read_text(encoding="utf-8"))
    assert problems(pinned, real) == [
        "newpkg==1.0: no advisory record for this version (run `make advisories`)"
    ]
    stale = _with(real, "aiohttp", version="0.0.1")
    assert any(p.startswith("aiohttp==") for p in problems(pins(LOCK.read_text()), stale))
    unknown = _with(real, "aiohttp", checked_via="none")
    assert any("no advisory data" in p for p in problems(pins(LOCK.read_text()), unknown))


def test_a_record_comes_from_the_release_json_or_the_latest_release() -> None:
    vuln = {"id": "PYSEC-1", "aliases": ["CVE-1"], "fixed_in": ["2.0"], "withdrawn": None,
            "summary": "s", "link": "l", "details": "dropped"}
    release = {"info": {"version": "1.0"}, "vulnerabilities": [vuln]}
    assert record("x", "1.0", release, None) == {
        "version": "1.0", "checked_via": "release",
        "vulnerabilities": [{k: vuln[k] for k in
                             ("id", "aliases", "summary", "fixed_in", "link", "withdrawn")}],
    }
    latest = {"info": {"version": "1.0"}, "vulnerabilities": []}
    assert record("x", "1.0", None, latest)["checked_via"] == "latest"
    newer = {"info": {"version": "2.0"}, "vulnerabilities": []}
    assert record("x", "1.0", None, newer)["checked_via"] == "none"


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in
              [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    text = LOCK.read_text(encoding="utf-8")
    pinned = pins(text)
    for req in wanted:
        name = normalize(req.name)
        assert name in pinned, f"{req.name} is not in the lock: run `make lock`"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{req.name}=={pinned[name]} does not satisfy {req.specifier}: run `make lock`"
        )
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[-1]):
        if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==", block):
            assert "--hash=sha256:" in block, block.splitlines()[0]
