"""Where the audit store and its keys come from: the demo's state folder, or a
deployment's YAML config plus environment.

Demo layout: ``DIR/audit.db`` (SQLite), ``DIR/master.key`` and ``DIR/signing.key``
(32 random bytes each, base64, mode 0600), created on first use.

Config keys (the gateway's config module reads the same names): ``audit.url`` or
``audit.url_file``, ``audit.master_key_file`` (base64), ``audit.signing_key_file`` (base64);
files named in the config are relative to it. The environment wins over the file:
``GDPR_GATEWAY_AUDIT_URL``, ``GDPR_GATEWAY_AUDIT_MASTER_KEY``, ``GDPR_GATEWAY_AUDIT_SIGNING_KEY``,
or each with ``_FILE`` naming a file (the way Kubernetes mounts a secret). A value and its
file together are refused. Migrating needs the URL only (:func:`store_url`).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audit.crypto import KEY_BYTES
from audit.errors import InvalidAuditInput


@dataclass(frozen=True)
class AuditSettings:
    """The three things the audit log needs; keys never appear in repr."""

    url: str
    master_key: bytes = field(repr=False)
    signing_key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "AuditSettings(url=<set>, master_key=<secret>, signing_key=<secret>)"


def decode_key(text: str, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidAuditInput(f"the {what} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise InvalidAuditInput(f"the {what} must decode to {KEY_BYTES} bytes")
    return key


def _key_file(path: Path, what: str, *, create: bool) -> bytes:
    if not path.exists():
        if not create:
            raise InvalidAuditInput(f"the {what} file does not exist: {path}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
    return decode_key(path.read_text(), what)


def open_demo_state(state_dir: str | os.PathLike[str]) -> tuple[str, bytes, bytes]:
    """(store URL, master key, signing key) of the demo's state folder, created on first
    use. The schema is not created here: call ``audit.migrate.upgrade(url)``."""
    root = Path(state_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    master = _key_file(root / "master.key", "master key", create=True)
    signing = _key_file(root / "signing.key", "signing key", create=True)
    return f"sqlite+aiosqlite:///{root / 'audit.db'}", master, signing


def _section(data: Mapping[str, Any]) -> Mapping[str, Any]:
    section = data.get("audit") if isinstance(data, Mapping) else None
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise InvalidAuditInput("config key 'audit' must be a mapping")
    return section


def _read(path: Path, what: str) -> str:
    if not path.exists():
        raise InvalidAuditInput(f"the {what} file does not exist: {path}")
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidAuditInput(f"cannot read the {what} file {path}") from exc


def _value(
    section: Mapping[str, Any], key: str, env: Mapping[str, str], base: Path
) -> str | None:
    """``audit.<key>`` from ``GDPR_GATEWAY_AUDIT_<KEY>[_FILE]``, else ``<key>[_file]`` of the
    config (a relative file from ``base``); ``None`` when none is given."""
    name = f"GDPR_GATEWAY_AUDIT_{key.upper()}"
    what = f"audit.{key}"
    if env.get(name) and env.get(name + "_FILE"):
        raise InvalidAuditInput(f"give either {name} or {name}_FILE, not both")
    if env.get(name):
        return env[name]
    if env.get(name + "_FILE"):
        return _read(Path(env[name + "_FILE"]), what)
    value, file = section.get(key), section.get(f"{key}_file")
    if value is not None and file is not None:
        raise InvalidAuditInput(f"config keys '{what}' and '{what}_file': give one, not both")
    if isinstance(value, str) and value:
        return value
    if isinstance(file, str) and file:
        path = Path(file).expanduser()
        return _read(path if path.is_absolute() else base / path, what)
    return None


def _url(section: Mapping[str, Any], env: Mapping[str, str], base: Path) -> str:
    url = _value(section, "url", env, base)
    if not url:
        raise InvalidAuditInput(
            "config key 'audit.url' (or audit.url_file, or env GDPR_GATEWAY_AUDIT_URL[_FILE])"
            " is required"
        )
    return url


def settings_from_mapping(
    data: Mapping[str, Any], *, base: Path, env: Mapping[str, str] | None = None
) -> AuditSettings:
    """Read the ``audit`` section of a config mapping (relative files from ``base``)."""
    env = os.environ if env is None else env
    section = _section(data)

    def key(name: str, what: str) -> bytes:
        text = _value(section, name, env, base)
        if text is None:
            variable = f"GDPR_GATEWAY_AUDIT_{name.upper()}"
            raise InvalidAuditInput(
                f"config key 'audit.{name}_file' or env {variable}[_FILE] is required"
            )
        return decode_key(text, what)

    return AuditSettings(
        url=_url(section, env, base),
        master_key=key("master_key", "master key"),
        signing_key=key("signing_key", "signing key"),
    )


def _config_mapping(file: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except OSError as exc:
        raise InvalidAuditInput(f"cannot read config file {file}") from exc
    except yaml.YAMLError as exc:
        raise InvalidAuditInput(f"config file {file} is not valid YAML") from exc
    if not isinstance(data, Mapping):
        raise InvalidAuditInput(f"config file {file} must hold a mapping")
    return data


def store_url(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> str:
    """The audit store URL of a deployment's YAML config (and environment): all that
    applying the schema needs, so a migration job is given no keys."""
    file = Path(path)
    env = os.environ if env is None else env
    return _url(_section(_config_mapping(file)), env, file.parent)


def load_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> AuditSettings:
    """The audit settings of a deployment's YAML config file."""
    file = Path(path)
    return settings_from_mapping(_config_mapping(file), base=file.parent, env=env)


DEFAULT_STATE_DIR = ".gdpr-gateway-demo"


def resolve_settings(
    state_dir: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None
) -> AuditSettings:
    """The store of a deployment (``config``) or of the demo (``state_dir``, default
    ``./.gdpr-gateway-demo``): what ``--state-dir``/``--config`` of the CLI mean."""
    if config is not None:
        return load_config(config)
    url, master, signing = open_demo_state(state_dir or DEFAULT_STATE_DIR)
    return AuditSettings(url=url, master_key=master, signing_key=signing)
