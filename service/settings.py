"""What the gateway is configured with: one frozen, typed object, read once.

:class:`Settings` is what ``service.config`` loads (``serve``) or ``service.demo_settings``
builds (``demo``); nothing else makes one. It has no defaults of its own: every default
is declared once, in the configuration schema (``service.config_model``). Secrets are
:class:`~service.secret.Secret`\\ s; the audit URL (it may carry a database password) is
left out of the ``repr``. Never log the object whole.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from common.vocabulary import Role
from service.secret import Secret
from service.upstreams.settings import UpstreamSettings

if TYPE_CHECKING:
    from service.registry import Registry

#: Only asymmetric algorithms: a shared HMAC secret or "none" is never accepted.
JWT_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A static bearer token, known only by its SHA-256 (hex) and mapped to a principal."""

    name: str
    roles: frozenset[Role]
    systems: frozenset[str]
    sha256: str


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """JWT bearer tokens signed by an identity provider whose public keys we hold."""

    public_keys: tuple[Secret | str, ...]
    issuer: str | None
    audience: str | None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    name_claim: str = "sub"
    roles_claim: str = "roles"
    systems_claim: str = "systems"
    leeway_seconds: float = 30.0


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the gateway is configured with (docs/configuration.md, key by key)."""

    host: str
    port: int
    workers: int  # serve's worker processes; 0: the usable CPUs (1 on SQLite)
    body_limit_bytes: int
    body_timeout_seconds: float
    keepalive_timeout_seconds: float
    header_limit_bytes: int
    header_count_limit: int
    log_level: str
    policies_dir: Path | None  # None: each system's policy file of the registry
    policies_reload_seconds: float  # 0: no watching (SIGHUP still reloads)
    audit_url: str = field(repr=False)  # may carry a database password
    audit_master_key: Secret
    audit_signing_key: Secret
    audit_checkpoint_every: int
    audit_checkpoint_seconds: float
    audit_reconcile_seconds: float
    audit_reconcile_min_age_seconds: float | None  # None: derived (app.forward_bound)
    audit_lock_wait_seconds: float  # then 503 audit_unavailable, nothing forwarded
    audit_lock_connections: int  # PostgreSQL: one per write in flight
    audit_key_period_days: int  # retention: a value is forgotten within one period
    audit_expire_seconds: float  # the expiry job's interval; 0: no job in the gateway
    pseudonym_key: Secret
    hash_salt: Secret
    tokens: tuple[TokenEntry, ...]
    jwt: JwtSettings | None
    #: one per system of ``systems``, by name
    upstreams: Mapping[str, UpstreamSettings]
    conflict_check: bool
    upstream_read_purpose_required: bool
    caller_rate_limit_per_second: float | None  # None: no per-caller limit
    caller_rate_limit_burst: int
    shutdown_drain_seconds: float
    shutdown_grace_seconds: float
    #: the systems these settings were read for (their connectors, policies, emulators)
    systems: Registry
    #: idempotency keys (docs/clients.md, "Safe retries"): how long an answer is
    #: replayed, how long a retry waits for the first request, how often keys expire
    idempotency_retention_seconds: float = 86400.0
    idempotency_wait_seconds: float = 5.0
    idempotency_expire_seconds: float = 300.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "upstreams", MappingProxyType(dict(self.upstreams)))

    def master_key_bytes(self) -> bytes:
        return _b64(self.audit_master_key)

    def signing_key_bytes(self) -> bytes:
        return _b64(self.audit_signing_key)

    def pseudonym_key_bytes(self) -> bytes:
        return _b64(self.pseudonym_key)

    def hash_salt_bytes(self) -> bytes:
        return _b64(self.hash_salt)


def _b64(secret: Secret) -> bytes:
    return base64.b64decode(secret.reveal(), validate=True)
