"""Audit the locked dependency set against a local copy of the PyPI advisories.

    python deps/audit.py check     # make audit (part of make test): offline
    python deps/audit.py refresh   # make advisories: needs pypi.org, rewrites the copy

``check`` fails (exit 1) when a package pinned in ``deps/requirements.lock`` has an
advisory in ``deps/advisories.json`` that is not withdrawn, or when the copy holds no
record for a pinned version (the lock changed after the last refresh).

Why not pip-audit itself: it asks ``https://pypi.org/pypi/NAME/VERSION/json`` or OSV at
run time; here only the package registries are reachable, OSV is not, and the registry
proxy serves the per-release JSON with 404. ``refresh`` therefore records, per pin, the
``vulnerabilities`` PyPI reports: from the per-release JSON when it is served, else from
the project JSON when the pinned version is the latest release (that list is the
latest release's). A pin that is neither cannot be checked and fails ``check`` until it
is upgraded, the per-release JSON can be reached, or someone checks it by hand and
records that in the copy (``"checked_via": "manual"`` with a ``note``; ``refresh``
keeps such a record while the pin stays). See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOCK = HERE / "requirements.lock"
ADVISORIES = HERE / "advisories.json"
PYPI = "https://pypi.org/pypi"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, str]:
    """``name==version`` lines of a pip-compile lock (hash lines and comments skipped)."""
    found: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = PIN.match(line)
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def problems(pinned: Mapping[str, str], advisories: Mapping[str, Any]) -> list[str]:
    """Every reason the pinned set does not pass, one line each; [] when it passes."""
    out: list[str] = []
    known = advisories.get("packages", {})
    for name, version in sorted(pinned.items()):
        entry = known.get(name)
        if entry is None or entry.get("version") != version:
            out.append(f"{name}=={version}: no advisory record for this version "
                       "(run `make advisories`)")
            continue
        if entry.get("checked_via") not in ("release", "latest", "manual"):
            out.append(f"{name}=={version}: PyPI gave no advisory data for this version")
            continue
        for vuln in entry.get("vulnerabilities", []):
            if vuln.get("withdrawn"):
                continue
            ids = ", ".join([vuln.get("id", "?"), *vuln.get("aliases", [])])
            fixed = ", ".join(vuln.get("fixed_in") or []) or "no fixed release"
            out.append(f"{name}=={version}: {ids} (fixed in: {fixed})")
    return out


def check(lock: Path, advisories: Path) -> int:
    pinned = pins(lock.read_text(encoding="utf-8"))
    if not pinned:
        print(f"audit: no pins in {lock}", file=sys.stderr)
        return 1
    data = json.loads(advisories.read_text(encoding="utf-8"))
    found = problems(pinned, data)
    for line in found:
        print(f"audit: {line}", file=sys.stderr)
    for name, entry in sorted(data.get("packages", {}).items()):
        if name in pinned and entry.get("checked_via") == "manual":
            print(f"audit: note: {name}=={entry['version']} checked by hand: {entry.get('note')}")
    if found:
        return 1
    print(f"audit: {len(pinned)} pinned packages, no known advisory "
          f"(advisories fetched {data.get('fetched', '?')})")
    return 0


# -- refresh (network) -----------------------------------------------------------------


def _get(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - https PyPI
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def _vulns(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    keep = ("id", "aliases", "summary", "fixed_in", "link", "withdrawn")
    return [{k: v.get(k) for k in keep} for v in body.get("vulnerabilities") or []]


def record(name: str, version: str, release: Mapping[str, Any] | None,
           project: Mapping[str, Any] | None) -> dict[str, Any]:
    """The advisory record of one pin from PyPI's per-release and project JSON."""
    if release is not None:
        return {"version": version, "checked_via": "release", "vulnerabilities": _vulns(release)}
    latest = (project or {}).get("info", {}).get("version")
    if project is not None and latest == version:
        return {"version": version, "checked_via": "latest", "vulnerabilities": _vulns(project)}
    return {"version": version, "checked_via": "none", "latest": latest, "vulnerabilities": []}


def refresh(lock: Path, advisories: Path, names: Iterable[str] | None = None) -> int:
    pinned = pins(lock.read_text(encoding="utf-8"))
    old = json.loads(advisories.read_text(encoding="utf-8")) if advisories.exists() else {}
    packages: dict[str, Any] = {}
    for name, version in sorted(pinned.items()):
        if names is not None and name not in names:
            continue
        release = _get(f"{PYPI}/{name}/{version}/json")
        project = None if release is not None else _get(f"{PYPI}/{name}/json")
        packages[name] = record(name, version, release, project)
        kept = old.get("packages", {}).get(name)
        if packages[name]["checked_via"] == "none" and kept is not None \
                and kept.get("checked_via") == "manual" and kept.get("version") == version:
            packages[name] = kept
        print(f"advisories: {name}=={version}: {packages[name]['checked_via']}, "
              f"{len(packages[name]['vulnerabilities'])} advisories")
    data = {
        "source": "PyPI JSON API, field `vulnerabilities` (OSV data); "
                  "written by `python deps/audit.py refresh`",
        "fetched": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "packages": packages,
    }
    advisories.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "refresh"])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--advisories", type=Path, default=ADVISORIES)
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.lock, args.advisories)
    return refresh(args.lock, args.advisories)


if __name__ == "__main__":
    sys.exit(main())
