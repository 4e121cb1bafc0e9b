"""The repository stands alone: nothing refers to the design folder beside it, and every
relative link of the docs and the README leads to a file of the checkout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the design's own files (they live outside the repository): ARCHITECTURE.md, API.md, ...
DESIGN_FILE = re.compile(
    r"\b(?:ARCHITECTURE|GDPR|CONVENTIONS|API)\.md\b|\.\./shared\b|shared/(?:design|seeds)"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", "ls-files", "--", *patterns],  # noqa: S607 - git from PATH, as make does
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


def test_nothing_refers_to_the_design_folder_beside_the_checkout() -> None:
    found = []
    for path in tracked("*.py", "*.md", "*.yaml", "*.yml", "*.toml", "*.txt", "Makefile"):
        if path.is_relative_to(REPO / "docs" / "vendors") or path == Path(__file__):
            continue  # the vendors' pages, as they are; this file names what it looks for
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DESIGN_FILE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}")
    assert found == []


def test_the_checker_sees_a_reference_to_the_design() -> None:
    assert DESIGN_FILE.search("as ARCHITECTURE.md says")
    # built, not written out: a grep of the tree for such paths finds none
    outside = "/".join(("..", "shared", "seeds", "x.txt"))
    assert DESIGN_FILE.search(f"see {outside}")
    assert not DESIGN_FILE.search("see docs/api.md and docs/vendors/UPSTREAMS.md")


def test_every_relative_link_of_the_docs_leads_to_a_file() -> None:
    broken = []
    for doc in tracked("*.md"):
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert broken == []
