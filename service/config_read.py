"""Read a configuration: one YAML file and ``GDPR_GATEWAY_*``, every problem at once.

The one reader of the configuration's format, used by every command. It walks the file
(parsed with ``policies.yamlmarks``, which keeps each key's line) and the environment
along the schema (``service.config_model``) and gathers the values by path, with where
each came from: ``config.yaml:12: audit.url`` or ``GDPR_GATEWAY_AUDIT_URL``. Rules
(docs/configuration.md):

- every key of the file can be given or overridden by the variable named after its
  path: ``audit.url`` -> ``GDPR_GATEWAY_AUDIT_URL``; the environment wins;
- a setting marked ``FROM_FILE`` may be given as ``<key>_file`` (relative to the YAML
  file) or ``<VARIABLE>_FILE`` (relative to the working directory); one trailing
  newline is dropped; the value and its file together are an error;
- unknown keys, unknown ``GDPR_GATEWAY_*`` variables and keys given twice are errors;
- values from text (the environment, a file) are :class:`~service.config_types.Text`,
  parsed by their setting's type when the schema validates them.

:func:`problems` turns the schema's errors into sentences that name the source and the
key and never the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from policies.yamlmarks import DUPLICATE_KEY, Key, dotted, load_marked
from service.config_types import FROM_FILE, Text

ENV_PREFIX: Final = "GDPR_GATEWAY_"
#: Variables with the prefix that are not settings (read by the command line, not here).
RESERVED_ENV: Final = frozenset({"GDPR_GATEWAY_CONFIG"})

Path_ = tuple[str, ...]


class ConfigError(Exception):
    """The configuration is unusable; ``errors`` lists every problem found (no values)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {e}" for e in errors))


def env_name(path: Path_) -> str:
    """The environment variable of a setting: ``("audit", "url")`` -> ``GDPR_GATEWAY_AUDIT_URL``."""
    return ENV_PREFIX + "_".join(path).upper()


# -- the schema's shape ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """One key of a section: a nested section (its model), or a value."""

    section: type[BaseModel] | None
    required: bool
    from_file: bool


def shapes(model: type[BaseModel]) -> dict[str, Shape]:
    out: dict[str, Shape] = {}
    for name, info in model.model_fields.items():
        out[name] = Shape(_section(info.annotation), info.is_required(), FROM_FILE in info.metadata)
    return out


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model of a section (``Model`` or ``Model | None``), else None (a value)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        models = [a for a in get_args(annotation) if a is not type(None)]
        if len(models) == 1:
            return _section(models[0])
    return None


def leaves(model: type[BaseModel], prefix: Path_ = ()) -> Iterator[tuple[Path_, Shape]]:
    """Every value of the schema, by path (what an environment variable may set)."""
    for name, shape in shapes(model).items():
        if shape.section is not None:
            yield from leaves(shape.section, (*prefix, name))
        else:
            yield (*prefix, name), shape


# -- reading -----------------------------------------------------------------------------


@dataclass
class Raw:
    """The values found, nested as in the file; where each came from; what went wrong."""

    label: str
    data: dict[str, Any] = field(default_factory=dict)
    where: dict[Key, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: settings whose ``*_file`` could not be read (reported; not "required" too)
    unreadable: set[Key] = field(default_factory=set)

    def locate(self, loc: Key) -> str:
        """The source of ``loc``, or of its nearest ancestor with one, and the rest."""
        for cut in range(len(loc), 0, -1):
            found = self.where.get(loc[:cut])
            if found is not None:
                return found + _suffix(loc[cut:])
        return f"{self.label}: {dotted(loc)}"


def _suffix(rest: Key) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)


def read(path: Path | None, environ: Mapping[str, str], model: type[BaseModel]) -> Raw:
    """The file (if any), then the environment; a file that cannot be used at all raises
    :class:`ConfigError` at once, anything else is collected in ``Raw.errors``."""
    raw = Raw(str(path) if path is not None else "configuration")
    if path is not None:
        _read_file(path, model, raw)
    _read_env(environ, model, raw)
    _open_sections(model, raw.data)
    return raw


def _read_file(path: Path, model: type[BaseModel], raw: Raw) -> None:
    label = raw.label
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{label}: cannot read ({type(exc).__name__})"]) from None
    doc = load_marked(text)
    fatal = [(line, message) for line, _, message in doc.errors if message != DUPLICATE_KEY]
    if fatal:  # a syntax error: the position only (the message never quotes the text)
        raise ConfigError([f"{label}:{line}: {message}" for line, message in fatal])
    for line, key, _ in doc.errors:
        raw.errors.append(f"{label}:{line}: {key}: given twice")
    if doc.data is None:
        return
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{label}: the top level must be a mapping"])
    raw.where.update({key: f"{label}:{line}: {dotted(key)}" for key, line in doc.lines.items()
                      if key})  # fmt: skip
    _walk(doc.data, model, (), path.parent, raw, raw.data)


def _walk(
    node: Mapping[str, Any],
    model: type[BaseModel],
    prefix: Path_,
    base: Path,
    raw: Raw,
    out: dict[str, Any],
) -> None:
    known = shapes(model)
    for key, value in node.items():
        here = (*prefix, key)
        shape = known.get(key)
        if shape is not None and shape.section is not None:
            if value is None:
                continue  # an empty section is an absent one
            if not isinstance(value, dict):
                raw.errors.append(f"{raw.locate(here)}: must be a mapping")
                continue
            _walk(value, shape.section, here, base, raw, out.setdefault(key, {}))
        elif shape is not None:
            out[key] = value
        elif key.endswith("_file") and getattr(known.get(key[:-5]), "from_file", False):
            setting = key[:-5]
            if setting in node:
                raw.errors.append(f"{raw.locate(here)}: give either {setting} or {key}, not both")
            elif not isinstance(value, str) or not value:
                raw.errors.append(f"{raw.locate(here)}: must be a file path")
            else:
                _from_file(base / value, (*prefix, setting), raw.locate(here), raw, out)
        else:
            raw.errors.append(f"{raw.locate(here)}: unknown key")


def _from_file(file: Path, path: Path_, where: str, raw: Raw, out: dict[str, Any]) -> None:
    try:
        text = file.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raw.errors.append(f"{where}: cannot read file {file} ({type(exc).__name__})")
        raw.unreadable.add(path)
        out.pop(path[-1], None)
        return
    out[path[-1]] = Text(text)
    raw.where[path] = where


def _read_env(environ: Mapping[str, str], model: type[BaseModel], raw: Raw) -> None:
    known = set(RESERVED_ENV)
    for path, shape in leaves(model):
        name = env_name(path)
        known.add(name)
        from_file = shape.from_file and name + "_FILE" in environ
        if shape.from_file:
            known.add(name + "_FILE")
        if name not in environ and not from_file:
            continue
        if name in environ and from_file:
            raw.errors.append(f"{name}_FILE: give either {name} or {name}_FILE, not both")
            continue
        target = _section_for(raw.data, path[:-1])
        if target is None:
            continue  # the file gave a value where a section belongs: reported
        raw.unreadable.discard(path)
        if from_file:
            _from_file(Path(environ[name + "_FILE"]), path, name + "_FILE", raw, target)
        else:
            target[path[-1]] = Text(environ[name])
            raw.where[path] = name
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            raw.errors.append(f"{name}: unknown variable")


def _section_for(data: dict[str, Any], path: Path_) -> dict[str, Any] | None:
    for key in path:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            return None
    return data


def _open_sections(model: type[BaseModel], data: dict[str, Any]) -> None:
    """Required sections exist (empty if need be), so that what is missing in them is
    reported key by key, each with its variable."""
    for name, shape in shapes(model).items():
        if shape.section is None or not shape.required:
            continue
        section = data.setdefault(name, {})
        if isinstance(section, dict):
            _open_sections(shape.section, section)


# -- the schema's errors as sentences ----------------------------------------------------

_MESSAGES: Final[Mapping[str, str]] = {
    "extra_forbidden": "unknown key",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a non-empty string",
    "string_too_short": "must be a non-empty string",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
}


def sentence(error: ErrorDetails, leaf_paths: set[Path_]) -> str:
    """What is wrong, without the value (pydantic's own ``msg`` may quote it)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "config":
        return str(error["msg"])
    if kind == "missing":
        loc = tuple(str(part) for part in error["loc"])
        return f"required (or {env_name(loc)})" if loc in leaf_paths else "required"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']:g}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']:g}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']:g}"
    return _MESSAGES.get(kind, "is not valid")


def problems(
    errors: list[ErrorDetails], raw: Raw, model: type[BaseModel], required: Path_ | None = None
) -> list[str]:
    """The schema's errors as ``where: sentence`` lines. ``required`` given: only what is
    missing under that path counts (a command that needs part of the configuration)."""
    leaf_paths = {path for path, _ in leaves(model)}
    out: list[str] = []
    for error in errors:
        loc: Key = tuple(error["loc"])
        if error["type"] == "missing":
            if loc in raw.unreadable:
                continue
            if required is not None and loc[: len(required)] != required:
                continue
        at = str((error.get("ctx") or {}).get("at", ""))
        if error["type"] == "missing" and loc in leaf_paths:
            where = f"{raw.label}: {dotted(loc)}"  # not in the file: no line to name
        else:
            where = raw.locate(loc)
        out.append(f"{where}{at}: {sentence(error, leaf_paths)}")
    return out
