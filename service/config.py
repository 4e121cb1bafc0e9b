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
    """The flat, frozen :class:`Settings` of a checked document."""
    audit, auth, jwt = document.audit, document.auth, document.auth.jwt
    return Settings(
        host=document.host,
        port=document.port,
        body_limit_bytes=document.body_limit_bytes,
        body_timeout_seconds=document.body_timeout_seconds,
        keepalive_timeout_seconds=document.keepalive_timeout_seconds,
        header_limit_bytes=document.header_limit_bytes,
        header_count_limit=document.header_count_limit,
        log_level=document.log_level,
        policies_dir=document.policies_dir,
        policies_reload_seconds=document.policies_reload_seconds,
        audit_url=audit.url,
        audit_master_key=audit.master_key,
        audit_signing_key=audit.signing_key,
        audit_checkpoint_every=audit.checkpoint_every,
        audit_checkpoint_seconds=audit.checkpoint_seconds,
        audit_reconcile_seconds=audit.reconcile_seconds,
        audit_reconcile_min_age_seconds=audit.reconcile_min_age_seconds,
        audit_lock_wait_seconds=audit.lock_wait_seconds,
        audit_lock_connections=audit.lock_connections,
        pseudonym_key=document.masking.pseudonym_key,
        hash_salt=document.masking.hash_salt,
        tokens=tuple(TokenEntry(t.name, t.roles, t.systems, t.sha256) for t in auth.tokens),
        jwt=None if jwt is None else JwtSettings(
            public_keys=jwt.public_keys,
            issuer=jwt.issuer,
            audience=jwt.audience,
            algorithms=jwt.algorithms,
            name_claim=jwt.name_claim,
            roles_claim=jwt.roles_claim,
            systems_claim=jwt.systems_claim,
            leeway_seconds=jwt.leeway_seconds,
        ),
        upstreams={name: _upstream(name, dict(document.upstreams)[name]) for name in systems},
        conflict_check=document.conflict_check,
        upstream_read_purpose_required=document.upstream_read_purpose_required,
        caller_rate_limit_per_second=document.caller_rate_limit_per_second,
        caller_rate_limit_burst=document.caller_rate_limit_burst,
        shutdown_drain_seconds=document.shutdown.drain_seconds,
        shutdown_grace_seconds=document.shutdown.grace_seconds,
        systems=systems,
    )


def _upstream(name: str, section: UpstreamSection) -> UpstreamSettings:
    """An upstream's section; its credentials and options are its system's models."""
    parts = dict(section)
    options = parts.get("options")
    return UpstreamSettings(
        system=name,
        base_url=section.base_url,
        credentials=MappingProxyType(dict(parts["credentials"])),
        options=MappingProxyType(options.as_mapping() if options is not None else {}),
        timeout_seconds=section.timeout_seconds,
        connect_timeout_seconds=section.connect_timeout_seconds,
        max_retries=section.max_retries,
        rate_limit_per_second=section.rate_limit_per_second,
        rate_limit_burst=section.rate_limit_burst,
        backoff_max_seconds=section.backoff_max_seconds,
        breaker_failure_threshold=section.breaker_failure_threshold,
        breaker_reset_seconds=section.breaker_reset_seconds,
    )
