"""Load the configuration - one YAML file and ``GDPR_GATEWAY_*`` - for any command.

The one settings loader. ``serve`` takes all of it (:func:`load_settings`); ``db upgrade``
needs the audit store's URL only (:func:`load_store_url`: a migration job is given no
keys), the ``audit`` commands the URL and the two keys (:func:`load_audit_access`), the
``policy`` commands the policy folder (:func:`load_policies_dir`). All of them read and
check the *whole* configuration the same way - file, environment, ``*_file``/``*_FILE``,
unknown keys, every bound - and differ only in what must be present (and whether the
policy folder must exist: only for the commands that read it): a configuration
``serve`` accepts, every command accepts.

Errors come all at once in a :class:`ConfigError`, each naming the file and line or the
variable, and the key; never a value. docs/configuration.md lists every setting; the
schema is ``service.config_model``, the reader ``service.config_read``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from audit.statedir import AuditSettings
from service.config_model import Document, UpstreamSection, document_model
from service.config_read import ConfigError, Raw, env_name, problems, read
from service.registry import SYSTEMS, Registry
from service.settings import JwtSettings, Settings, TokenEntry
from service.upstreams.settings import UpstreamSettings

__all__ = [
    "ConfigError",
    "JwtSettings",
    "Settings",
    "TokenEntry",
    "env_name",
    "load_audit_access",
    "load_policies_dir",
    "load_settings",
    "load_store_url",
    "settings_from",
]


def load_settings(
    path: Path | None, environ: Mapping[str, str], *, systems: Registry = SYSTEMS
) -> Settings:
    """Everything (``serve``); raise :class:`ConfigError` listing every problem."""
    model = document_model(systems)
    raw = read(path, environ, model)
    document = _validate(raw, model, None)
    assert document is not None  # nothing may be missing: a document or an error
    return settings_from(document, systems)


def load_store_url(
    path: Path | None, environ: Mapping[str, str], *, systems: Registry = SYSTEMS
) -> str:
    """The audit store's URL (``db upgrade``); the rest is checked, not required."""
    model = document_model(systems)
    raw = read(path, environ, model)
    _validate(raw, model, ("audit", "url"))
    return str(_value(model, raw, ("audit", "url")))


def load_audit_access(
    path: Path | None, environ: Mapping[str, str], *, systems: Registry = SYSTEMS
) -> AuditSettings:
    """The audit store and its keys (the ``audit`` commands)."""
    model = document_model(systems)
    raw = read(path, environ, model)
    _validate(raw, model, ("audit",))
    master, signing = (_value(model, raw, ("audit", key)) for key in ("master_key", "signing_key"))
    return AuditSettings(
        url=str(_value(model, raw, ("audit", "url"))),
        master_key=base64.b64decode(master.reveal()),
        signing_key=base64.b64decode(signing.reveal()),
    )


def load_policies_dir(
    path: Path | None, environ: Mapping[str, str], *, systems: Registry = SYSTEMS
) -> Path | None:
    """The policy folder in force (``policy check|show --config``): ``policies_dir``, or
    None for the registry's policy files; nothing else is required."""
    model = document_model(systems)
    raw = read(path, environ, model)
    _validate(raw, model, ("policies_dir",), reads_policies=True)
    if "policies_dir" not in raw.data:
        return None
    directory: Path | None = _value(model, raw, ("policies_dir",))
    return directory


def _validate(
    raw: Raw,
    model: type[Document],
    required: tuple[str, ...] | None,
    *,
    reads_policies: bool = False,
) -> Document | None:
    """The whole document checked; what is missing outside ``required`` (when given) is
    not an error. The document, or None when something not required is missing."""
    whole = required is None or reads_policies
    try:
        document = model.model_validate(raw.data, context=_context(raw, model, whole=whole))
    except ValidationError as exc:
        errors = raw.errors + problems(exc.errors(), raw, model, required)
        if errors:
            raise ConfigError(errors) from None
        return None
    if raw.errors:
        raise ConfigError(raw.errors)
    return document


def _context(raw: Raw, model: type[Document], *, whole: bool) -> dict[str, Any]:
    """What the schema's checks need: the folder relative paths start from, the known
    systems, and whether the command uses the whole configuration (then folders it names
    must exist)."""
    base = Path(raw.label).parent if raw.label != "configuration" else Path.cwd()
    upstreams = model.model_fields["upstreams"].annotation
    assert isinstance(upstreams, type) and issubclass(upstreams, BaseModel)
    return {"base": base, "systems": tuple(upstreams.model_fields), "whole": whole}


def _value(model: type[Document], raw: Raw, path: tuple[str, ...]) -> Any:
    """One setting of a document already checked, converted by its type."""
    section: type[BaseModel] = model
    for key in path[:-1]:
        inner = section.model_fields[key].annotation
        assert isinstance(inner, type) and issubclass(inner, BaseModel)
        section = inner
    info = section.model_fields[path[-1]]
    adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
    value: Any = raw.data
    for key in path:
        value = value[key]
    return adapter.validate_python(value, context=_context(raw, model, whole=False))


# -- the document as Settings ------------------------------------------------------------


def settings_from(document: Document, systems: Registry) -> Settings:
    """The flat, frozen :class:`Settings` of a checked document. Its names are the keys'
    paths joined with ``_`` (``audit.url`` -> ``audit_url``), the masking keys without
    their section's name; the sections that are lists or mappings of their own (tokens,
    JWT, upstreams) become their own types."""
    values = dict(document)
    sections = {
        name: values.pop(name) for name in ("audit", "shutdown", "idempotency", "masking", "auth")
    }
    values.pop("upstreams")
    for section in ("audit", "shutdown", "idempotency"):
        values |= {f"{section}_{key}": value for key, value in dict(sections[section]).items()}
    values |= dict(sections["masking"])
    auth = document.auth
    return Settings(
        **values,
        tokens=tuple(TokenEntry(t.name, t.roles, t.systems, t.sha256) for t in auth.tokens),
        jwt=None if auth.jwt is None else JwtSettings(**dict(auth.jwt)),
        upstreams={name: _upstream(name, dict(document.upstreams)[name]) for name in systems},
        systems=systems,
    )


def _upstream(name: str, section: UpstreamSection) -> UpstreamSettings:
    """An upstream's section; its credentials and options are its system's models."""
    values = dict(section)  # the same names as UpstreamSettings'
    credentials, options = values.pop("credentials"), values.pop("options", None)
    return UpstreamSettings(
        system=name,
        credentials=MappingProxyType(dict(credentials)),
        options=MappingProxyType(options.as_mapping() if options is not None else {}),
        **values,
    )
