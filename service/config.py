"""One frozen, typed settings object, read once from a YAML file and ``GDPR_GATEWAY_*``.

Every key of the file can be overridden by an environment variable named after its
path: ``audit.url`` -> ``GDPR_GATEWAY_AUDIT_URL``, ``upstreams.billbee.credentials.api_key``
-> ``GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_API_KEY``. Secrets (and a few long
values) may also come from a file: ``<key>_file`` in YAML, ``<VARIABLE>_FILE`` in the
environment (Kubernetes secrets mounted as files). The environment wins over the file.

Unknown keys and unknown ``GDPR_GATEWAY_*`` variables are errors. All problems are
reported at once in a :class:`ConfigError`; messages name the source and the key, never
a value. ``docs/configuration.md`` lists every setting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.secret import Secret
from service.upstreams.settings import UpstreamSettings

SYSTEMS: Final = ("timelog", "billbee", "sedona", "keycom")
ROLES: Final = frozenset({"editor", "auditor", "privacy_officer", "admin"})
ENV_PREFIX: Final = "GDPR_GATEWAY_"
# Variables with the prefix that are not settings (read by the command line, not here).
RESERVED_ENV: Final = frozenset({"GDPR_GATEWAY_CONFIG"})
# Only asymmetric algorithms: a shared HMAC secret or "none" is never accepted.
JWT_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CREDENTIALS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "timelog": ("token",),
        "billbee": ("api_key", "username", "password"),
        "sedona": ("username", "password"),
        "keycom": ("token",),
    }
)
OPTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"timelog": ("account", "api_version"), "billbee": (), "sedona": (), "keycom": ()}
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


class ConfigError(Exception):
    """The configuration is unusable; ``errors`` lists every problem found (no values)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {e}" for e in errors))


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A static bearer token, known only by its SHA-256 (hex) and mapped to a principal."""

    name: str
    roles: frozenset[str]
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
    """Everything the gateway is configured with. Secrets are :class:`Secret`s."""

    host: str = "127.0.0.1"
    port: int = 8080
    body_limit_bytes: int = 65536
    body_timeout_seconds: float = 30.0
    keepalive_timeout_seconds: float = 75.0
    header_limit_bytes: int = 8190
    header_count_limit: int = 100
    log_level: str = "INFO"
    policies_dir: Path | None = None  # None: the shipped catalog
    policies_reload_seconds: float = 5.0  # 0: no watching (SIGHUP still reloads)
    audit_url: str = field(repr=False)  # may carry a database password
    audit_master_key: Secret
    audit_signing_key: Secret
    audit_checkpoint_every: int = 1000
    audit_checkpoint_seconds: float = 60.0
    audit_reconcile_seconds: float = 60.0
    audit_reconcile_min_age_seconds: float | None = None  # None: derived (app.forward_bound)
    audit_lock_wait_seconds: float = 10.0  # then 503 audit_unavailable, nothing forwarded
    audit_lock_connections: int = 24  # PostgreSQL: one per write in flight
    pseudonym_key: Secret
    hash_salt: Secret
    tokens: tuple[TokenEntry, ...] = ()
    jwt: JwtSettings | None = None
    upstreams: Mapping[str, UpstreamSettings]
    conflict_check: bool = True
    upstream_read_purpose_required: bool = True
    caller_rate_limit_per_second: float | None = None  # None: no per-caller limit
    caller_rate_limit_burst: int = 20
    shutdown_drain_seconds: float = 5.0
    shutdown_grace_seconds: float = 20.0

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


# -- the schema: every key, its kind, whether it is secret -----------------------------


@dataclass(frozen=True, slots=True)
class _Leaf:
    kind: str  # str | int | float | optfloat | bool | path | list | pems | tokens
    secret: bool = False  # stored as Secret, never echoed
    file_ok: bool = False  # may be given as <key>_file / <VAR>_FILE


_STR, _INT, _FLOAT, _BOOL = _Leaf("str"), _Leaf("int"), _Leaf("float"), _Leaf("bool")
_SECRET = _Leaf("str", secret=True, file_ok=True)


def _upstream_schema(system: str) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "base_url": _STR,
        "credentials": {key: _SECRET for key in CREDENTIALS[system]},
        "timeout_seconds": _FLOAT,
        "connect_timeout_seconds": _FLOAT,
        "max_retries": _INT,
        "rate_limit_per_second": _Leaf("optfloat"),
        "rate_limit_burst": _INT,
        "backoff_max_seconds": _FLOAT,
        "breaker_failure_threshold": _INT,
        "breaker_reset_seconds": _FLOAT,
    }
    if OPTIONS[system]:
        schema["options"] = {key: _STR for key in OPTIONS[system]}
    return schema


_SCHEMA: Final[dict[str, Any]] = {
    "host": _STR,
    "port": _INT,
    "body_limit_bytes": _INT,
    "body_timeout_seconds": _FLOAT,
    "keepalive_timeout_seconds": _FLOAT,
    "header_limit_bytes": _INT,
    "header_count_limit": _INT,
    "log_level": _STR,
    "policies_dir": _Leaf("path"),
    "policies_reload_seconds": _FLOAT,
    "conflict_check": _BOOL,
    "upstream_read_purpose_required": _BOOL,
    "caller_rate_limit_per_second": _Leaf("optfloat"),
    "caller_rate_limit_burst": _INT,
    "audit": {
        "url": _Leaf("str", file_ok=True),  # not a Secret (the interface is str) but never echoed
        "master_key": _SECRET,
        "signing_key": _SECRET,
        "checkpoint_every": _INT,
        "checkpoint_seconds": _FLOAT,
        "reconcile_seconds": _FLOAT,
        "reconcile_min_age_seconds": _Leaf("optfloat"),
        "lock_wait_seconds": _FLOAT,
        "lock_connections": _INT,
    },
    "shutdown": {"drain_seconds": _FLOAT, "grace_seconds": _FLOAT},
    "masking": {"pseudonym_key": _SECRET, "hash_salt": _SECRET},
    "auth": {
        "tokens": _Leaf("tokens", file_ok=True),
        "jwt": {
            "public_keys": _Leaf("pems", file_ok=True),
            "algorithms": _Leaf("list"),
            "issuer": _STR,
            "audience": _STR,
            "name_claim": _STR,
            "roles_claim": _STR,
            "systems_claim": _STR,
            "leeway_seconds": _FLOAT,
        },
    },
    "upstreams": {system: _upstream_schema(system) for system in SYSTEMS},
}

Path_ = tuple[str, ...]


def _flatten(schema: Mapping[str, Any], prefix: Path_ = ()) -> dict[Path_, _Leaf]:
    out: dict[Path_, _Leaf] = {}
    for key, node in schema.items():
        if isinstance(node, _Leaf):
            out[(*prefix, key)] = node
        else:
            out.update(_flatten(node, (*prefix, key)))
    return out


_LEAVES: Final = _flatten(_SCHEMA)


def env_name(path: Path_) -> str:
    """The environment variable of a setting: ``("audit", "url")`` -> ``GDPR_GATEWAY_AUDIT_URL``."""
    return ENV_PREFIX + "_".join(path).upper()


@dataclass(frozen=True, slots=True)
class _Raw:
    value: Any
    where: str  # "config.yaml: audit.url" or "GDPR_GATEWAY_AUDIT_URL": never the value
    text: bool  # came as text (environment or file): parse it
    base: Path  # relative paths resolve against this


# -- collecting raw values from the file and the environment ---------------------------


# the value of a key whose file could not be read (already reported: not "required" too)
_UNREADABLE: Final = object()


def _read_text(path: Path, where: str, errors: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{where}: cannot read file {path} ({type(exc).__name__})")
        return None


def _from_file(path: Path, errors: list[str]) -> dict[Path_, _Raw]:
    """The file's values by path; a file that cannot be read or parsed stops here."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{label}: cannot read ({type(exc).__name__})"]) from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:  # the message quotes the line: report the position only
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        problem = exc.problem or "invalid"
        raise ConfigError([f"{label}:{line}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError:
        raise ConfigError([f"{label}: YAML syntax error"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: the top level must be a mapping"])
    out: dict[Path_, _Raw] = {}
    _walk(data, _SCHEMA, (), label, path.parent, out, errors)
    return out


class _Lined(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key and the keys given twice."""

    lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are :class:`_Lined` (for errors that name the line)."""


def _construct_lined(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Iterator[_Lined]:
    data = _Lined()
    data.lines, data.duplicates = {}, []
    yield data
    data.update(loader.construct_mapping(node))
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in data.lines:
            data.duplicates.append((key, line))
        else:
            data.lines[key] = line


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_lined)


def _walk(
    node: Mapping[Any, Any],
    schema: Mapping[str, Any],
    prefix: Path_,
    label: str,
    base: Path,
    out: dict[Path_, _Raw],
    errors: list[str],
) -> None:
    lines: Mapping[Any, int] = getattr(node, "lines", {})
    for key, line in getattr(node, "duplicates", ()):
        errors.append(f"{label}:{line}: {'.'.join((*prefix, str(key)))}: given twice")
    for key, value in node.items():
        dotted = ".".join((*prefix, str(key)))
        where = f"{label}:{lines[key]}: {dotted}" if key in lines else f"{label}: {dotted}"
        sub = schema.get(key) if isinstance(key, str) else None
        if isinstance(sub, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                errors.append(f"{where}: must be a mapping")
                continue
            _walk(value, sub, (*prefix, key), label, base, out, errors)
        elif isinstance(sub, _Leaf):
            out[(*prefix, key)] = _Raw(value, where, False, base)
        elif isinstance(key, str) and key.endswith("_file") and _file_ok(schema, key[:-5]):
            path = (*prefix, key[:-5])
            if key[:-5] in node:
                errors.append(f"{where}: give either {key[:-5]} or {key}, not both")
                continue
            if not isinstance(value, str) or not value:
                errors.append(f"{where}: must be a file path")
                continue
            text = _read_text(base / value, where, errors)
            out[path] = _Raw(_UNREADABLE if text is None else text, where, True, base)
        else:
            errors.append(f"{where}: unknown key")


def _file_ok(schema: Mapping[str, Any], key: str) -> bool:
    leaf = schema.get(key)
    return isinstance(leaf, _Leaf) and leaf.file_ok


def _from_env(environ: Mapping[str, str], errors: list[str]) -> dict[Path_, _Raw]:
    out: dict[Path_, _Raw] = {}
    known = set(RESERVED_ENV)
    cwd = Path.cwd()
    for path, leaf in _LEAVES.items():
        name = env_name(path)
        known.add(name)
        if name in environ:
            out[path] = _Raw(environ[name], name, True, cwd)
        if leaf.file_ok:
            known.add(name + "_FILE")
            if name + "_FILE" in environ:
                if name in environ:
                    errors.append(f"{name}_FILE: give either {name} or {name}_FILE, not both")
                    continue
                text = _read_text(Path(environ[name + "_FILE"]), name + "_FILE", errors)
                out[path] = _Raw(
                    _UNREADABLE if text is None else text, name + "_FILE", True, cwd
                )
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            errors.append(f"{name}: unknown variable")
    return out


# -- converting raw values to typed ones -----------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _convert(leaf: _Leaf, raw: _Raw, errors: list[str]) -> Any:
    value, where = raw.value, raw.where
    kind = leaf.kind
    if kind == "str":
        if isinstance(value, str) and value.strip():
            return Secret(value) if leaf.secret else value.strip()
        errors.append(f"{where}: must be a non-empty string")
    elif kind in ("int", "float", "optfloat"):
        if kind == "optfloat" and (
            value is None or (raw.text and str(value).strip().lower() in ("", "none", "null"))
        ):
            return None
        number: Any = value
        if raw.text and isinstance(value, str):
            try:
                number = int(value) if kind == "int" else float(value)
            except ValueError:
                number = None
        ok = isinstance(number, int) if kind == "int" else isinstance(number, int | float)
        if ok and not isinstance(number, bool):
            return number if kind == "int" else float(number)
        errors.append(f"{where}: must be {'an integer' if kind == 'int' else 'a number'}")
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if raw.text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        errors.append(f"{where}: must be true or false")
    elif kind == "path":
        if isinstance(value, str) and value.strip():
            return raw.base / value.strip()
        errors.append(f"{where}: must be a path")
    elif kind == "list":
        items = value.split(",") if raw.text and isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(i, str) and i.strip() for i in items):
            return tuple(i.strip() for i in items)
        errors.append(f"{where}: must be a list of strings")
    elif kind == "pems":
        return _pems(value, where, errors)
    elif kind == "tokens":
        return _tokens(value, raw, errors)
    return None


def _pems(value: Any, where: str, errors: list[str]) -> tuple[str, ...] | None:
    texts = value if isinstance(value, list) else [value]
    blocks: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            errors.append(f"{where}: must be PEM text")
            return None
        found = re.findall(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", text, re.S)
        blocks.extend(found)
    if not blocks:
        errors.append(f"{where}: no PEM public key found")
        return None
    for i, block in enumerate(blocks):
        try:
            key = load_pem_public_key(block.encode())
        except (ValueError, TypeError):
            errors.append(f"{where}[{i}]: not a PEM public key")
            continue
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            errors.append(f"{where}[{i}]: only RSA and EC public keys are supported")
    return tuple(blocks)


_TOKEN_KEYS = frozenset({"name", "sha256", "roles", "systems"})


def _tokens(value: Any, raw: _Raw, errors: list[str]) -> tuple[TokenEntry, ...] | None:
    where = raw.where
    if raw.text and isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            errors.append(f"{where}: must be a YAML or JSON list of token entries")
            return None
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list of token entries")
        return None
    entries: list[TokenEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{at}: must be a mapping with name, sha256, roles, systems")
            continue
        bad = len(errors)
        if "token" in item:
            errors.append(f"{at}.token: tokens in clear are not accepted; give sha256 (hex)")
        for key in sorted(set(map(str, item)) - _TOKEN_KEYS - {"token"}):
            errors.append(f"{at}.{key}: unknown key")
        name, digest = item.get("name"), item.get("sha256")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{at}.name: required (a non-empty string)")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            errors.append(f"{at}.sha256: required, 64 hex digits (SHA-256 of the token)")
        elif digest.lower() in seen:
            errors.append(f"{at}.sha256: the same token is configured twice")
        roles = _names(item.get("roles"), f"{at}.roles", ROLES, errors)
        systems = _names(item.get("systems"), f"{at}.systems", {*SYSTEMS, "*"}, errors)
        if len(errors) == bad:
            assert isinstance(name, str) and isinstance(digest, str)
            seen.add(digest.lower())
            entries.append(TokenEntry(name.strip(), roles, systems, digest.lower()))
    return tuple(entries)


def _names(
    value: Any, where: str, allowed: set[str] | frozenset[str], errors: list[str]
) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        errors.append(f"{where}: required, a non-empty list of: {', '.join(sorted(allowed))}")
        return frozenset()
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        errors.append(f"{where}: unknown entries {unknown}; valid: {', '.join(sorted(allowed))}")
    return frozenset(value)


# -- assembling Settings ---------------------------------------------------------------


class _Values:
    """Converted values by path, with the checks that need more than one kind."""

    def __init__(self, raw: Mapping[Path_, _Raw], errors: list[str], label: str) -> None:
        self.raw, self.errors, self.label = raw, errors, label
        self.values: dict[Path_, Any] = {}
        for path, item in raw.items():
            if item.value is _UNREADABLE:
                continue
            converted = _convert(_LEAVES[path], item, errors)
            if converted is not None:
                self.values[path] = converted

    def where(self, path: Path_) -> str:
        item = self.raw.get(path)
        return item.where if item else f"{self.label}: {'.'.join(path)}"

    def get(self, path: Path_, default: Any = None) -> Any:
        return self.values.get(path, default)

    def required(self, path: Path_) -> Any:
        if path not in self.values and path not in self.raw:  # a bad value is reported
            self.errors.append(f"{self.where(path)}: required (or {env_name(path)})")
        return self.values.get(path)

    def number(
        self, path: Path_, default: float | None, minimum: float, *, strict: bool = False
    ) -> Any:
        value = self.values.get(path, default)
        if value is not None and (value <= minimum if strict else value < minimum):
            relation = "greater than" if strict else "at least"
            self.errors.append(f"{self.where(path)}: must be {relation} {minimum:g}")
        return value

    def key(self, path: Path_, min_bytes: int, max_bytes: int | None = None) -> Secret | None:
        secret: Secret | None = self.required(path)
        if secret is None:
            return None
        try:
            size = len(_b64(secret))
        except (binascii.Error, ValueError):
            self.errors.append(f"{self.where(path)}: must be base64")
            return secret
        if size < min_bytes or (max_bytes is not None and size > max_bytes):
            need = f"{min_bytes}" if max_bytes == min_bytes else f"at least {min_bytes}"
            self.errors.append(f"{self.where(path)}: must decode to {need} bytes")
        return secret


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read the YAML file (if any) and the environment; raise ConfigError listing all problems."""
    errors: list[str] = []
    raw = _from_file(path, errors) if path is not None else {}
    raw.update(_from_env(environ, errors))
    v = _Values(raw, errors, str(path) if path is not None else "configuration")

    log_level = str(v.get(("log_level",), "INFO")).upper()
    if log_level not in LOG_LEVELS:
        errors.append(f"{v.where(('log_level',))}: must be one of {', '.join(LOG_LEVELS)}")
    port = v.number(("port",), 8080, 0)
    if port is not None and port > 65535:
        errors.append(f"{v.where(('port',))}: must be at most 65535")
    audit_url = v.required(("audit", "url"))
    if audit_url is not None and not audit_url.startswith(
        ("sqlite+aiosqlite://", "postgresql+asyncpg://")
    ):
        errors.append(
            f"{v.where(('audit', 'url'))}: must start with sqlite+aiosqlite:// "
            "or postgresql+asyncpg://"
        )
    policies_dir = v.get(("policies_dir",))
    if policies_dir is not None and not policies_dir.is_dir():
        errors.append(f"{v.where(('policies_dir',))}: not a directory")
    fields: dict[str, Any] = {
        "host": v.get(("host",), "127.0.0.1"),
        "port": port,
        "body_limit_bytes": v.number(("body_limit_bytes",), 65536, 1),
        "body_timeout_seconds": v.number(("body_timeout_seconds",), 30.0, 0, strict=True),
        "keepalive_timeout_seconds": v.number(
            ("keepalive_timeout_seconds",), 75.0, 0, strict=True
        ),
        "header_limit_bytes": v.number(("header_limit_bytes",), 8190, 1024),
        "header_count_limit": v.number(("header_count_limit",), 100, 16),
        "log_level": log_level,
        "policies_dir": policies_dir,
        "policies_reload_seconds": v.number(("policies_reload_seconds",), 5.0, 0),
        "audit_url": audit_url,
        "audit_master_key": v.key(("audit", "master_key"), 32, 32),
        "audit_signing_key": v.key(("audit", "signing_key"), 32, 32),
        "audit_checkpoint_every": v.number(("audit", "checkpoint_every"), 1000, 1),
        "audit_checkpoint_seconds": v.number(("audit", "checkpoint_seconds"), 60.0, 0, strict=True),
        "audit_reconcile_seconds": v.number(("audit", "reconcile_seconds"), 60.0, 0, strict=True),
        "audit_reconcile_min_age_seconds": v.number(
            ("audit", "reconcile_min_age_seconds"), None, 0
        ),
        "audit_lock_wait_seconds": v.number(("audit", "lock_wait_seconds"), 10.0, 0, strict=True),
        "audit_lock_connections": v.number(("audit", "lock_connections"), 24, 1),
        "pseudonym_key": v.key(("masking", "pseudonym_key"), 32),
        "hash_salt": v.key(("masking", "hash_salt"), 16),
        "tokens": v.get(("auth", "tokens"), ()),
        "jwt": _jwt(v),
        "upstreams": {system: _upstream(v, system) for system in SYSTEMS},
        "conflict_check": v.get(("conflict_check",), True),
        "upstream_read_purpose_required": v.get(("upstream_read_purpose_required",), True),
        "caller_rate_limit_per_second": v.number(
            ("caller_rate_limit_per_second",), None, 0, strict=True
        ),
        "caller_rate_limit_burst": v.number(("caller_rate_limit_burst",), 20, 1),
        "shutdown_drain_seconds": v.number(("shutdown", "drain_seconds"), 5.0, 0),
        "shutdown_grace_seconds": v.number(("shutdown", "grace_seconds"), 20.0, 0, strict=True),
    }
    if errors:
        raise ConfigError(errors)
    return Settings(**fields)


def _jwt(v: _Values) -> JwtSettings | None:
    if not any(p[:2] == ("auth", "jwt") for p in v.raw):
        return None
    base = ("auth", "jwt")
    algorithms = v.get((*base, "algorithms"), ("RS256", "ES256"))
    bad = sorted(set(algorithms) - JWT_ALGORITHMS)
    if bad:
        v.errors.append(
            f"{v.where((*base, 'algorithms'))}: not allowed: {', '.join(bad)}; "
            f"valid: {', '.join(sorted(JWT_ALGORITHMS))}"
        )
    return JwtSettings(
        public_keys=v.required((*base, "public_keys")) or (),
        issuer=v.required((*base, "issuer")),
        audience=v.required((*base, "audience")),
        algorithms=tuple(algorithms),
        name_claim=v.get((*base, "name_claim"), "sub"),
        roles_claim=v.get((*base, "roles_claim"), "roles"),
        systems_claim=v.get((*base, "systems_claim"), "systems"),
        leeway_seconds=v.number((*base, "leeway_seconds"), 30.0, 0),
    )


def _upstream(v: _Values, system: str) -> UpstreamSettings | None:
    base = ("upstreams", system)
    url = v.required((*base, "base_url"))
    if url is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
        v.errors.append(f"{v.where((*base, 'base_url'))}: must be an http(s) URL")
    credentials = {k: v.required((*base, "credentials", k)) for k in CREDENTIALS[system]}
    token = credentials.get("token")
    if system == "keycom" and token is not None and not _HEX40.fullmatch(token.reveal()):
        v.errors.append(f"{v.where((*base, 'credentials', 'token'))}: must be 40 hex digits")
    options: dict[str, str] = {}
    if system == "timelog":
        options = {
            "account": v.required((*base, "options", "account")),
            "api_version": v.get((*base, "options", "api_version"), "v1"),
        }
    defaults = UpstreamSettings(system=system, base_url="")
    numbers = {
        name: v.number((*base, name), getattr(defaults, name), minimum, strict=strict)
        for name, (minimum, strict) in _UPSTREAM_NUMBERS.items()
    }
    return UpstreamSettings(
        system=system,
        base_url=(url or "").rstrip("/"),
        credentials=MappingProxyType(credentials),
        options=MappingProxyType(options),
        **numbers,
    )


# numeric upstream settings: (minimum, strictly greater than the minimum)
_UPSTREAM_NUMBERS: Final[Mapping[str, tuple[float, bool]]] = MappingProxyType(
    {
        "timeout_seconds": (0, True),
        "connect_timeout_seconds": (0, True),
        "max_retries": (0, False),
        "rate_limit_per_second": (0, True),
        "rate_limit_burst": (1, False),
        "backoff_max_seconds": (0, False),
        "breaker_failure_threshold": (1, False),
        "breaker_reset_seconds": (0, True),
    }
)


# -- the demo: fixed, published tokens and upstream credentials (API.md "Demo data") ---

DEMO_TOKENS: Final[Mapping[str, tuple[str, frozenset[str]]]] = MappingProxyType(
    {
        "demo-editor": ("demo-editor", frozenset({"editor"})),
        "demo-auditor": ("demo-auditor", frozenset({"auditor"})),
        "demo-privacy": ("demo-privacy", frozenset({"privacy_officer"})),
        "demo-admin": ("demo-admin", frozenset({"admin"})),
    }
)
PSEUDONYM_KEY_FILE: Final = "pseudonym.key"


def _demo_upstreams(urls: Mapping[str, str]) -> dict[str, UpstreamSettings]:
    def up(system: str, creds: Mapping[str, str], **kw: Any) -> UpstreamSettings:
        return UpstreamSettings(
            system=system,
            base_url=urls[system].rstrip("/"),
            credentials=MappingProxyType({k: Secret(s) for k, s in creds.items()}),
            **kw,
        )

    return {
        "timelog": up(
            "timelog",
            {"token": "demo-timelog-token"},
            options=MappingProxyType({"account": "demo", "api_version": "v1"}),
        ),
        "billbee": up(
            "billbee",
            {
                "api_key": "demo-billbee-key",
                "username": "demo",
                "password": "demo-billbee-password",
            },
            rate_limit_per_second=2.0,
        ),
        "sedona": up("sedona", {"username": "demo", "password": "demo-sedona-password"}),
        "keycom": up("keycom", {"token": "0123456789abcdef0123456789abcdef01234567"}),
    }


def _demo_masking_keys(state_dir: Path) -> tuple[bytes, bytes]:
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
        out.write(f"{base64.b64encode(key).decode()}\n{base64.b64encode(salt).decode()}\n")
    return key, salt


def demo_settings(
    *,
    port: int,
    state_dir: Path,
    upstream_urls: Mapping[str, str],
    audit_url: str,
    master_key: bytes,
    signing_key: bytes,
) -> Settings:
    """The demo's settings: fixed tokens and credentials, keys kept under ``state_dir``."""
    problems = [f"upstream_urls: {s}: required" for s in SYSTEMS if s not in upstream_urls]
    problems += [
        f"{name}: must be 32 bytes"
        for name, key in (("master_key", master_key), ("signing_key", signing_key))
        if len(key) != 32
    ]
    if problems:
        raise ConfigError(problems)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pseudonym_key, hash_salt = _demo_masking_keys(state_dir)
    every = frozenset(SYSTEMS)
    return Settings(
        port=port,
        audit_url=audit_url,
        audit_master_key=Secret(base64.b64encode(master_key).decode()),
        audit_signing_key=Secret(base64.b64encode(signing_key).decode()),
        pseudonym_key=Secret(base64.b64encode(pseudonym_key).decode()),
        hash_salt=Secret(base64.b64encode(hash_salt).decode()),
        tokens=tuple(
            TokenEntry(name=name, roles=roles, systems=every, sha256=_sha256(token))
            for token, (name, roles) in DEMO_TOKENS.items()
        ),
        upstreams=_demo_upstreams(upstream_urls),
    )


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
