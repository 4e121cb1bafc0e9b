"""The demo's audit store and keys, kept in a state folder.

Layout: ``DIR/audit.db`` (SQLite), ``DIR/master.key`` and ``DIR/signing.key`` (32 random
bytes each, base64, mode 0600), created on first use. A deployment's store and keys come
from its configuration instead, which the gateway's settings loader reads
(``service.config``) and hands to this package as plain values.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path

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


DEFAULT_STATE_DIR = ".gdpr-gateway-demo"


def demo_settings(state_dir: str | os.PathLike[str] | None) -> AuditSettings:
    """The demo's store and keys (``state_dir``, default ``./.gdpr-gateway-demo``)."""
    url, master, signing = open_demo_state(state_dir or DEFAULT_STATE_DIR)
    return AuditSettings(url=url, master_key=master, signing_key=signing)
