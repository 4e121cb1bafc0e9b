"""Load policy files: parse with line marks, check the schema, compile; all errors at once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from policies.compile import compile_policy
from policies.compiled import CompiledPolicy
from policies.model import PolicyLoadError
from policies.schema import check
from policies.yamlmarks import dotted, load_marked

CATALOG = Path(__file__).parent / "catalog"


class PolicySet(Mapping[str, CompiledPolicy]):
    """The loaded policies by system id; ``policies["timelog"]``, KeyError for unknown."""

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self._by_system = {p.system: p for p in policies}
        self.systems: tuple[str, ...] = tuple(sorted(self._by_system))

    def __getitem__(self, system: str) -> CompiledPolicy:
        return self._by_system[system]

    def __iter__(self) -> Iterator[str]:
        return iter(self.systems)

    def __len__(self) -> int:
        return len(self.systems)

    def versions(self) -> dict[str, str]:
        return {s: p.version for s, p in self._by_system.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}@{p.version[:12]}" for s, p in self._by_system.items())
        return f"PolicySet({inner})"


def policy_files(paths: Sequence[Path] | None = None) -> list[Path]:
    """The files named (a directory stands for its ``*.yaml``); None: the shipped catalog."""
    roots = [CATALOG] if paths is None else [Path(p) for p in paths]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files.extend(sorted([*root.glob("*.yaml"), *root.glob("*.yml")]))
        else:
            files.append(root)
    return files


def load_file(path: Path) -> tuple[CompiledPolicy | None, list[str]]:
    """One file: its compiled policy, or None and every "file:line key: message" error."""
    label = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{label}:1: cannot read the file ({exc.__class__.__name__})"]
    doc = load_marked(text)
    errors = [_format(label, line, key, message) for line, key, message in doc.errors]
    if doc.data is None and not errors:
        errors.append(f"{label}:1: the file is empty")
    if errors:
        return None, errors
    for key, message in check(doc.data):
        errors.append(_format(label, doc.line(key), dotted(key), message))
    if errors:
        return None, errors
    return compile_policy(doc.data, source=str(path)), []


def load_policy_set(paths: Sequence[Path] | None = None) -> PolicySet:
    """Load and compile every policy; raises PolicyLoadError listing all errors of all files."""
    files = policy_files(paths)
    errors: list[str] = []
    if not files:
        errors.append("no policy files found")
    loaded: list[CompiledPolicy] = []
    seen: dict[str, str] = {}
    for path in files:
        policy, file_errors = load_file(path)
        errors.extend(file_errors)
        if policy is None:
            continue
        if policy.system in seen:
            errors.append(
                f"{path.name}:1 system: {policy.system!r} is already defined in "
                f"{seen[policy.system]}"
            )
            continue
        seen[policy.system] = path.name
        loaded.append(policy)
    if errors:
        raise PolicyLoadError(errors)
    return PolicySet(loaded)


def _format(label: str, line: int, key: str, message: str) -> str:
    return f"{label}:{line} {key}: {message}" if key else f"{label}:{line}: {message}"
