"""The packages' layering, as docs/architecture.md states it: ``common`` imports nothing of
ours, ``policies`` and ``audit`` only ``common``, ``service`` any of them; and the audit
library draws no progress bar (tqdm belongs to the CLI, in service/commands).

Every ``import`` statement is read, also those inside functions (a lazy import is still
a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("common", "policies", "audit", "service")
ALLOWED = {
    "common": set(),
    "policies": {"common"},
    "audit": {"common"},
    "service": {"common", "policies", "audit"},
}
#: third-party packages a library package must not import
BARRED = {library: {"tqdm", "aiohttp"} for library in ("common", "policies", "audit")}


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level package imported -> the files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", OURS)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    imported = _imports(package)
    assert imported, package  # the walk found the package's code
    wrong = {
        name: sorted(files)
        for name, files in imported.items()
        if (name in OURS and name != package and name not in ALLOWED[package])
        or name in BARRED.get(package, set())
    }
    assert wrong == {}
