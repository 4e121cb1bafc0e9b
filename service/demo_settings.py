"""The demo's settings: published tokens, the emulators' credentials, keys in a folder.

``gdpr-gateway demo`` reads no configuration: it builds one here and puts it through the
same schema as ``serve`` (``service.config_model``), so every default is the one
docs/configuration.md lists. What is fixed: the tokens ``demo-editor``,
``demo-auditor``, ``demo-privacy`` and ``demo-admin`` (one role each, every system);
each system's credentials and options as its emulator publishes them, and a client
limit at the rate the emulator enforces (Billbee's 2 requests per second). The masking
keys are kept in ``<state_dir>/pseudonym.key`` (created once, mode 0600) so pseudonyms
stay stable across runs. None of this exists outside the demo.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from pydantic import ValidationError

from common.vocabulary import Role
from service.config import settings_from
from service.config_model import document_model
from service.config_read import ConfigError
from service.registry import SYSTEMS, Registry
from service.settings import Settings

#: token -> (principal name, roles): published, for the demo only
DEMO_TOKENS: Final[Mapping[str, tuple[str, frozenset[Role]]]] = MappingProxyType(
    {
        "demo-editor": ("demo-editor", frozenset({Role.EDITOR})),
        "demo-auditor": ("demo-auditor", frozenset({Role.AUDITOR})),
        "demo-privacy": ("demo-privacy", frozenset({Role.PRIVACY_OFFICER})),
        "demo-admin": ("demo-admin", frozenset({Role.ADMIN})),
    }
)
PSEUDONYM_KEY_FILE: Final = "pseudonym.key"


def demo_settings(
    *,
    port: int,
    state_dir: Path,
    upstream_urls: Mapping[str, str],
    audit_url: str,
    master_key: bytes,
    signing_key: bytes,
    systems: Registry = SYSTEMS,
) -> Settings:
    """The demo's settings: fixed tokens and credentials, keys kept under ``state_dir``."""
    problems = [f"upstream_urls: {s}: required" for s in systems if s not in upstream_urls]
    problems += [
        f"{name}: must be 32 bytes"
        for name, key in (("master_key", master_key), ("signing_key", signing_key))
        if len(key) != 32
    ]
    if problems:
        raise ConfigError(problems)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pseudonym_key, hash_salt = _masking_keys(state_dir)
    document: dict[str, Any] = {
        "port": port,
        "audit": {"url": audit_url, "master_key": _b64(master_key),
                  "signing_key": _b64(signing_key)},
        "masking": {"pseudonym_key": _b64(pseudonym_key), "hash_salt": _b64(hash_salt)},
        "auth": {"tokens": [
            {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(),
             "roles": sorted(roles), "systems": list(systems)}
            for token, (name, roles) in DEMO_TOKENS.items()
        ]},
        "upstreams": {
            name: emulator_upstream(systems, name, upstream_urls[name]) for name in systems
        },
    }  # fmt: skip
    model = document_model(systems)
    try:
        checked = model.model_validate(document, context={"systems": tuple(systems)})
    except ValidationError as exc:  # a broken emulator spec: names only, never values
        raise ConfigError([".".join(map(str, e["loc"])) for e in exc.errors()]) from None
    return settings_from(checked, systems)


def emulator_upstream(systems: Registry, name: str, url: str) -> dict[str, Any]:
    """The ``upstreams.<name>`` section of a configuration for the emulator at ``url``:
    its published credentials and options, and the client limit it enforces (the demo,
    the bench and the tests that run ``serve`` against the emulators)."""
    emulator = systems[name].emulator
    section: dict[str, Any] = {"base_url": url, "credentials": dict(emulator.credentials)}
    if systems[name].options is not None:
        section["options"] = dict(emulator.options)
    if emulator.rate_limit_per_second is not None:
        section["rate_limit_per_second"] = float(emulator.rate_limit_per_second)
    return section


def _masking_keys(state_dir: Path) -> tuple[bytes, bytes]:
    """The demo's pseudonym key and hash salt, created once so pseudonyms stay stable."""
    path = state_dir / PSEUDONYM_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        lines = path.read_text(encoding="ascii").split()
        try:
            key, salt = (base64.b64decode(x, validate=True) for x in lines)
        except (ValueError, binascii.Error):
            raise ConfigError([f"{path}: not a demo pseudonym key file"]) from None
        return key, salt
    key, salt = secrets.token_bytes(32), secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(f"{_b64(key)}\n{_b64(salt)}\n")
    return key, salt


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
