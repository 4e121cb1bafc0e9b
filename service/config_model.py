"""The configuration file's schema: every key, its type, its bound and its default, once.

The models mirror the YAML (docs/configuration.md lists the same keys); environment
variables are named after their paths. ``upstreams`` has one section per system of a
registry, each with that system's credentials and options models (declared next to its
connector): :func:`document_model` builds the schema for a registry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from annotated_types import Ge, Gt, Le
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import AfterValidator, BeforeValidator, PlainValidator, ValidationInfo, create_model

from common.vocabulary import EVERY_SYSTEM, Role
from service.config_types import (
    FROM_FILE,
    Flag,
    Integer,
    Name,
    Number,
    OptionalNonNegative,
    OptionalPositive,
    SecretText,
    Section,
    Text,
    base64_key,
    problem,
    relative_path,
)
from service.registry import Registry
from service.settings import JWT_ALGORITHMS, LOG_LEVELS, JwtSettings
from service.upstreams.settings import UpstreamSettings

_HEX64 = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"https?://[^/\s]+(/\S*)?")
_STORES: Final = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S)
_UPSTREAM: Final = UpstreamSettings(system="", base_url="")  # its defaults are the defaults
_JWT: Final = JwtSettings(public_keys=(), issuer=None, audience=None)  # its defaults


def _log_level(value: Any) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise problem(f"must be one of {', '.join(LOG_LEVELS)}")


def _store_url(value: str) -> str:
    if not value.startswith(_STORES):
        raise problem(f"must start with {' or '.join(_STORES)}")
    return value


def _directory(value: Any, info: ValidationInfo) -> Path:
    """A folder that exists - checked when the command reads it (``serve``); a migration
    job or the audit CLI is not given the policies, and must not fail for them."""
    path = relative_path(value, info)
    if (info.context or {}).get("whole", True) and not path.is_dir():
        raise problem("not a directory")
    return path


def _http_url(value: str) -> str:
    if _URL.fullmatch(value) is None:
        raise problem("must be an http(s) URL")
    return value.rstrip("/")


def _text_list(value: Any) -> Any:
    """A list, or (as text) comma-separated items."""
    return [item.strip() for item in value.split(",")] if isinstance(value, Text) else value


def _list_of_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    raise problem("must be a list of strings")


def _algorithms(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = sorted(set(value) - JWT_ALGORITHMS)
    if bad:
        raise problem(
            f"not allowed: {', '.join(bad)}; valid: {', '.join(sorted(JWT_ALGORITHMS))}"
        )
    return value


def _pems(value: Any) -> list[str]:
    """PEM blocks out of a text (or a list of texts) holding one or several."""
    texts = value if isinstance(value, list) else [value]
    if not all(isinstance(text, str) for text in texts):
        raise problem("must be PEM text")
    blocks = [block for text in texts for block in _PEM_BLOCK.findall(text)]
    if not blocks:
        raise problem("no PEM public key found")
    return blocks


def _public_key(block: str) -> str:
    try:
        key = load_pem_public_key(block.encode())
    except (ValueError, TypeError):
        raise problem("not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise problem("only RSA and EC public keys are supported")
    return block


def _names_of(
    valid: Callable[[ValidationInfo], Iterable[str]], convert: Callable[[str], Any] = str
) -> Callable[..., Any]:
    """A non-empty list of names out of ``valid`` (unknown ones are named: they are
    roles and systems of the configuration, not personal data)."""

    def check(value: Any, info: ValidationInfo) -> frozenset[Any]:
        allowed = sorted(valid(info))
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise problem(f"required, a non-empty list of: {', '.join(allowed)}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise problem(f"unknown entries {unknown}; valid: {', '.join(allowed)}")
        return frozenset(convert(v) for v in value)

    return check


def _known_systems(info: ValidationInfo) -> Iterable[str]:
    return [*(info.context or {}).get("systems", ()), EVERY_SYSTEM]


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value.lower()):
        raise problem("required, 64 hex digits (SHA-256 of the token)")
    return value.lower()


def _refuse_clear_token(_value: Any) -> None:
    raise problem("tokens in clear are not accepted; give sha256 (hex)")


def _token_list(value: Any) -> Any:
    """As text (environment, ``tokens_file``): a YAML or JSON list; absent: none."""
    if isinstance(value, Text):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise problem("must be a YAML or JSON list of token entries") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise problem("must be a list of token entries")
    return value


def _distinct_tokens(entries: tuple[TokenSection, ...]) -> tuple[TokenSection, ...]:
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry.sha256 in seen:
            raise problem("the same token is configured twice", at=f"[{i}].sha256")
        seen.add(entry.sha256)
    return entries


class TokenSection(Section):
    """One entry of ``auth.tokens``."""

    name: Name
    sha256: Annotated[str, PlainValidator(_sha256)]
    roles: Annotated[frozenset[Role], PlainValidator(_names_of(lambda _: Role, Role))]
    systems: Annotated[frozenset[str], PlainValidator(_names_of(_known_systems))]
    token: Annotated[None, PlainValidator(_refuse_clear_token)] = None


class JwtSection(Section):
    public_keys: Annotated[
        tuple[Annotated[str, AfterValidator(_public_key)], ...],
        BeforeValidator(_pems),
        FROM_FILE,
    ]
    algorithms: Annotated[
        tuple[str, ...], PlainValidator(_list_of_names), AfterValidator(_algorithms),
        BeforeValidator(_text_list),
    ] = _JWT.algorithms
    issuer: Name
    audience: Name
    name_claim: Name = _JWT.name_claim
    roles_claim: Name = _JWT.roles_claim
    systems_claim: Name = _JWT.systems_claim
    leeway_seconds: Annotated[Number, Ge(0)] = _JWT.leeway_seconds


class AuthSection(Section):
    tokens: Annotated[
        tuple[TokenSection, ...], AfterValidator(_distinct_tokens), BeforeValidator(_token_list),
        FROM_FILE,
    ] = ()
    jwt: JwtSection | None = None


class AuditSection(Section):
    # not a Secret (the audit log takes a str) but never echoed: it may carry a password
    url: Annotated[Name, AfterValidator(_store_url), FROM_FILE]
    master_key: Annotated[SecretText, base64_key(32, 32)]
    signing_key: Annotated[SecretText, base64_key(32, 32)]
    checkpoint_every: Annotated[Integer, Ge(1)] = 1000
    checkpoint_seconds: Annotated[Number, Gt(0)] = 60.0
    reconcile_seconds: Annotated[Number, Gt(0)] = 60.0
    reconcile_min_age_seconds: OptionalNonNegative = None  # None: derived from the upstreams
    lock_wait_seconds: Annotated[Number, Gt(0)] = 10.0
    lock_connections: Annotated[Integer, Ge(1)] = 24
    # retention of sealed values (audit.retention): the key period, and how often the
    # gateway runs the expiry job (0: never; run `gdpr-gateway audit expire` instead)
    key_period_days: Annotated[Integer, Ge(1), Le(366)] = 7
    expire_seconds: Annotated[Number, Ge(0)] = 3600.0


class IdempotencySection(Section):
    # how long a key's first answer is replayed (docs/clients.md, "Safe retries")
    retention_seconds: Annotated[Number, Gt(0)] = 86400.0
    # how long a retry waits for the first request with its key before 409
    wait_seconds: Annotated[Number, Ge(0)] = 5.0
    # how often the gateway deletes keys whose retention ended (0: never)
    expire_seconds: Annotated[Number, Ge(0)] = 300.0


class MaskingSection(Section):
    pseudonym_key: Annotated[SecretText, base64_key(32)]
    hash_salt: Annotated[SecretText, base64_key(16)]


class ShutdownSection(Section):
    drain_seconds: Annotated[Number, Ge(0)] = 5.0
    grace_seconds: Annotated[Number, Gt(0)] = 20.0


class UpstreamSection(Section):
    """What every upstream has; :func:`document_model` adds its credentials and options."""

    base_url: Annotated[Name, AfterValidator(_http_url)]
    timeout_seconds: Annotated[Number, Gt(0)] = _UPSTREAM.timeout_seconds
    connect_timeout_seconds: Annotated[Number, Gt(0)] = _UPSTREAM.connect_timeout_seconds
    max_retries: Annotated[Integer, Ge(0)] = _UPSTREAM.max_retries
    rate_limit_per_second: OptionalPositive = _UPSTREAM.rate_limit_per_second
    rate_limit_burst: Annotated[Integer, Ge(1)] = _UPSTREAM.rate_limit_burst
    backoff_max_seconds: Annotated[Number, Ge(0)] = _UPSTREAM.backoff_max_seconds
    breaker_failure_threshold: Annotated[Integer, Ge(1)] = _UPSTREAM.breaker_failure_threshold
    breaker_reset_seconds: Annotated[Number, Gt(0)] = _UPSTREAM.breaker_reset_seconds


class Document(Section):
    """The whole file; ``upstreams`` is added per registry by :func:`document_model`."""

    host: Name = "127.0.0.1"
    port: Annotated[Integer, Ge(0), Le(65535)] = 8080
    workers: Annotated[Integer, Ge(0), Le(256)] = 0  # 0: the usable CPUs (1 on SQLite)
    body_limit_bytes: Annotated[Integer, Ge(1)] = 65536
    body_timeout_seconds: Annotated[Number, Gt(0)] = 30.0
    keepalive_timeout_seconds: Annotated[Number, Gt(0)] = 75.0
    header_limit_bytes: Annotated[Integer, Ge(1024)] = 8190
    header_count_limit: Annotated[Integer, Ge(16)] = 100
    log_level: Annotated[str, PlainValidator(_log_level)] = "INFO"
    policies_dir: Annotated[Path | None, PlainValidator(_directory)] = None
    policies_reload_seconds: Annotated[Number, Ge(0)] = 5.0
    conflict_check: Flag = True
    upstream_read_purpose_required: Flag = True
    caller_rate_limit_per_second: OptionalPositive = None
    caller_rate_limit_burst: Annotated[Integer, Ge(1)] = 20
    audit: AuditSection
    masking: MaskingSection
    auth: AuthSection = AuthSection()
    shutdown: ShutdownSection = ShutdownSection()
    idempotency: IdempotencySection = IdempotencySection()
    #: one section per system, each an ``UpstreamSection`` (:func:`document_model`)
    upstreams: Section


@functools.cache
def document_model(systems: Registry) -> type[Document]:
    """The schema of a configuration for ``systems``: one ``upstreams`` section each."""
    sections: dict[str, Any] = {}
    for name, descriptor in systems.items():
        fields: dict[str, Any] = {"credentials": (descriptor.credentials, ...)}
        if descriptor.options is not None:
            fields["options"] = (descriptor.options, ...)
        model = create_model(f"Upstream_{name}", __base__=UpstreamSection, **fields)
        sections[str(name)] = (model, ...)
    upstreams = create_model("Upstreams", __base__=Section, **sections)
    return create_model("Config", __base__=Document, upstreams=(upstreams, ...))

