"""Where the audit store and its keys come from: the demo's state folder, or a
deployment's YAML config plus environment.

Demo layout: ``DIR/audit.db`` (SQLite), ``DIR/master.key`` and ``DIR/signing.key``
(32 random bytes each, base64, mode 0600), created on first use.

Config keys (the gateway's config module reads the same names): ``audit.url``,
``audit.master_key_file`` or env ``GDPR_GATEWAY_AUDIT_MASTER_KEY`` (base64),
``audit.signing_key_file`` or env ``GDPR_GATEWAY_AUDIT_SIGNING_KEY`` (base64); env
``GDPR_GATEWAY_AUDIT_URL`` overrides ``audit.url``. Environment wins over the file.
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

MASTER_ENV = "GDPR_GATEWAY_AUDIT_MASTER_KEY"
SIGNING_ENV = "GDPR_GATEWAY_AUDIT_SIGNING_KEY"
URL_ENV = "GDPR_GATEWAY_AUDIT_URL"


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


def settings_from_mapping(
    data: Mapping[str, Any], *, base: Path, env: Mapping[str, str] | None = None
) -> AuditSettings:
    """Read the ``audit`` section of a config mapping (relative files from ``base``)."""
    env = os.environ if env is None else env
    section = data.get("audit") if isinstance(data, Mapping) else None
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise InvalidAuditInput("config key 'audit' must be a mapping")
    url = env.get(URL_ENV) or section.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidAuditInput("config key 'audit.url' is required")

    def key(env_name: str, file_key: str, what: str) -> bytes:
        if env.get(env_name):
            return decode_key(env[env_name], what)
        name = section.get(file_key)
        if not isinstance(name, str) or not name:
            raise InvalidAuditInput(f"config key 'audit.{file_key}' or env {env_name} is required")
        path = Path(name).expanduser()
        return _key_file(path if path.is_absolute() else base / path, what, create=False)

    return AuditSettings(
        url=url,
        master_key=key(MASTER_ENV, "master_key_file", "master key"),
        signing_key=key(SIGNING_ENV, "signing_key_file", "signing key"),
    )


def load_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> AuditSettings:
    """The audit settings of a deployment's YAML config file."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except OSError as exc:
        raise InvalidAuditInput(f"cannot read config file {file}") from exc
    except yaml.YAMLError as exc:
        raise InvalidAuditInput(f"config file {file} is not valid YAML") from exc
    if not isinstance(data, Mapping):
        raise InvalidAuditInput(f"config file {file} must hold a mapping")
    return settings_from_mapping(data, base=file.parent, env=env)


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
