from __future__ import annotations

import base64
import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.config import ConfigError, env_name, load_settings
from service.demo_settings import DEMO_TOKENS, demo_settings
from service.registry import SYSTEMS
from service.secret import Secret
from service.settings import Settings

MASTER = base64.b64encode(bytes(range(32))).decode()
SIGNING = base64.b64encode(bytes(range(32, 64))).decode()
PSEUDONYM = base64.b64encode(b"p" * 32).decode()
SALT = base64.b64encode(b"s" * 16).decode()
# Recognisable secret values: none of them may appear in any repr, str or error message.
SECRETS = {
    "timelog": "tl-secret-token-XYZZY",
    "billbee_key": "bb-secret-key-XYZZY",
    "billbee_pw": "bb-secret-password-XYZZY",
    "sedona_pw": "sd-secret-password-XYZZY",
    "keycom": "abcdefabcdefabcdefabcdefabcdefabcdefabcd",
    "dbpass": "db-secret-password-XYZZY",
}

FULL = f"""
host: 10.0.0.1
port: 9000
log_level: debug
policies_dir: policies
conflict_check: false
audit:
  url: postgresql+asyncpg://gw:{SECRETS['dbpass']}@db/gw
  master_key: {MASTER}
  signing_key: {SIGNING}
  checkpoint_every: 50
masking:
  pseudonym_key: {PSEUDONYM}
  hash_salt: {SALT}
auth:
  tokens:
    - name: crm-app
      sha256: {hashlib.sha256(b"crm-app-token").hexdigest()}
      roles: [editor]
      systems: [billbee, sedona]
upstreams:
  timelog:
    base_url: https://timelog.example/
    credentials: {{token: {SECRETS['timelog']}}}
    options: {{account: acme}}
  billbee:
    base_url: https://billbee.example
    credentials:
      api_key: {SECRETS['billbee_key']}
      username: acme
      password: {SECRETS['billbee_pw']}
    rate_limit_per_second: 2
  sedona:
    base_url: https://sedona.example
    credentials: {{username: acme, password: {SECRETS['sedona_pw']}}}
  keycom:
    base_url: https://keycom.example
    credentials: {{token: {SECRETS['keycom']}}}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "policies").mkdir(exist_ok=True)  # FULL names it
    return path


def assert_no_secret(text: str) -> None:
    leaked = [name for name, value in SECRETS.items() if value in text]
    leaked += [n for n, v in (("master", MASTER), ("signing", SIGNING)) if v in text]
    assert leaked == [], "secret values leaked (names listed)"


def test_full_file_is_read_into_typed_settings(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL), {})
    assert (s.host, s.port, s.log_level, s.conflict_check) == ("10.0.0.1", 9000, "DEBUG", False)
    assert s.policies_dir == tmp_path / "policies"  # relative to the file
    assert s.audit_checkpoint_every == 50
    assert s.audit_checkpoint_seconds == 60.0  # default
    assert s.master_key_bytes() == bytes(range(32))
    assert s.signing_key_bytes() == bytes(range(32, 64))
    assert s.pseudonym_key_bytes() == b"p" * 32
    assert s.hash_salt_bytes() == b"s" * 16
    assert set(s.upstreams) == set(SYSTEMS)
    billbee = s.upstreams["billbee"]
    assert billbee.credentials["password"] == Secret(SECRETS["billbee_pw"])
    assert billbee.rate_limit_per_second == 2.0
    assert s.upstreams["timelog"].base_url == "https://timelog.example"
    assert dict(s.upstreams["timelog"].options) == {"account": "acme", "api_version": "v1"}
    (token,) = s.tokens
    assert token.name == "crm-app"
    assert token.roles == frozenset({"editor"})
    assert token.systems == frozenset({"billbee", "sedona"})
    assert s.jwt is None


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL), {})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.upstreams["x"] = s.upstreams["billbee"]  # type: ignore[index]


def test_secrets_never_in_repr_or_str(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL), {})
    assert_no_secret(repr(s))
    assert_no_secret(str(s))
    assert_no_secret(repr(s.upstreams))


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "GDPR_GATEWAY_PORT": "9100",
        "GDPR_GATEWAY_AUDIT_URL": "sqlite+aiosqlite:///audit.db",
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_BASE_URL": "http://127.0.0.1:1/",
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_API_KEY": "from-env",
        "GDPR_GATEWAY_CONFLICT_CHECK": "yes",
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_RATE_LIMIT_PER_SECOND": "none",
    }
    s = load_settings(write(tmp_path, FULL), env)
    assert s.port == 9100
    assert s.audit_url == "sqlite+aiosqlite:///audit.db"
    assert s.upstreams["billbee"].base_url == "http://127.0.0.1:1"
    assert s.upstreams["billbee"].credentials["api_key"].reveal() == "from-env"
    assert s.upstreams["billbee"].rate_limit_per_second is None
    assert s.conflict_check is True
    assert s.upstreams["sedona"].base_url == "https://sedona.example"  # untouched


def _env_only() -> dict[str, str]:
    env = {
        "GDPR_GATEWAY_AUDIT_URL": "sqlite+aiosqlite:///a.db",
        "GDPR_GATEWAY_AUDIT_MASTER_KEY": MASTER,
        "GDPR_GATEWAY_AUDIT_SIGNING_KEY": SIGNING,
        "GDPR_GATEWAY_MASKING_PSEUDONYM_KEY": PSEUDONYM,
        "GDPR_GATEWAY_MASKING_HASH_SALT": SALT,
        "GDPR_GATEWAY_UPSTREAMS_TIMELOG_OPTIONS_ACCOUNT": "acme",
        "GDPR_GATEWAY_UPSTREAMS_TIMELOG_CREDENTIALS_TOKEN": SECRETS["timelog"],
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_API_KEY": SECRETS["billbee_key"],
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_USERNAME": "acme",
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_PASSWORD": SECRETS["billbee_pw"],
        "GDPR_GATEWAY_UPSTREAMS_SEDONA_CREDENTIALS_USERNAME": "acme",
        "GDPR_GATEWAY_UPSTREAMS_SEDONA_CREDENTIALS_PASSWORD": SECRETS["sedona_pw"],
        "GDPR_GATEWAY_UPSTREAMS_KEYCOM_CREDENTIALS_TOKEN": SECRETS["keycom"],
    }
    for i, system in enumerate(SYSTEMS):
        env[f"GDPR_GATEWAY_UPSTREAMS_{system.upper()}_BASE_URL"] = f"http://127.0.0.1:{9001 + i}"
    return env


def test_environment_alone_is_enough() -> None:
    s = load_settings(None, _env_only())
    assert s.port == 8080 and s.host == "127.0.0.1"
    assert s.upstreams["keycom"].credentials["token"].reveal() == SECRETS["keycom"]
    assert s.tokens == ()


def test_file_variables_read_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "master").write_text(MASTER + "\n")
    (tmp_path / "tokens.yaml").write_text(
        f"- {{name: ops, sha256: {'a' * 64}, roles: [admin], systems: ['*']}}\n"
    )
    env = _env_only()
    del env["GDPR_GATEWAY_AUDIT_MASTER_KEY"]
    env["GDPR_GATEWAY_AUDIT_MASTER_KEY_FILE"] = str(tmp_path / "master")
    env["GDPR_GATEWAY_AUTH_TOKENS_FILE"] = str(tmp_path / "tokens.yaml")
    s = load_settings(None, env)
    assert s.master_key_bytes() == bytes(range(32))  # trailing newline stripped
    assert s.tokens[0].systems == frozenset({"*"})


def test_yaml_file_keys_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "salt").write_text(SALT)
    text = FULL.replace(f"hash_salt: {SALT}", "hash_salt_file: sub/salt")
    s = load_settings(write(tmp_path, text), {})
    assert s.hash_salt_bytes() == b"s" * 16


def test_value_and_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "salt").write_text(SALT)
    env = {"GDPR_GATEWAY_MASKING_HASH_SALT": SALT,
           "GDPR_GATEWAY_MASKING_HASH_SALT_FILE": str(tmp_path / "salt")}
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, FULL), env)
    assert any("not both" in e for e in err.value.errors)


def test_every_problem_is_reported_at_once_without_values(tmp_path: Path) -> None:
    text = (
        FULL.replace("checkpoint_every: 50", "checkpoint_every: fifty")
        .replace("base_url: https://billbee.example", "base_ur: https://billbee.example")
        .replace(f"master_key: {MASTER}", "master_key: c2hvcnQ=")
        .replace(f"token: {SECRETS['keycom']}", "token: not-hex-XYZZY")
    )
    env = {
        "GDPR_GATEWAY_NO_SUCH_THING": "1",
        "GDPR_GATEWAY_AUDIT_URL": "mysql://u:pw@h/db",
        "GDPR_GATEWAY_UPSTREAMS_SEDONA_TIMEOUT_SECONDS": "0",
        "GDPR_GATEWAY_UPSTREAMS_SEDONA_MAX_RETRIES": "-1",
        "GDPR_GATEWAY_CONFLICT_CHECK": "maybe",
        "GDPR_GATEWAY_LOG_LEVEL": "chatty",
        "GDPR_GATEWAY_PORT": "70000",
        "GDPR_GATEWAY_POLICIES_DIR": str(tmp_path / "nowhere"),
    }
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env)
    errors = err.value.errors
    expected = [
        r"^GDPR_GATEWAY_PORT: must be at most 65535",
        r"^GDPR_GATEWAY_POLICIES_DIR: not a directory",
        r"config\.yaml:\d+: audit\.checkpoint_every: must be an integer",
        r"^GDPR_GATEWAY_UPSTREAMS_SEDONA_TIMEOUT_SECONDS: must be greater than 0",
        r"^GDPR_GATEWAY_UPSTREAMS_SEDONA_MAX_RETRIES: must be at least 0",
        r"^GDPR_GATEWAY_CONFLICT_CHECK: must be true or false",
        r"^GDPR_GATEWAY_LOG_LEVEL: must be one of DEBUG, INFO",
        r"config\.yaml:\d+: upstreams\.billbee\.base_ur: unknown key",
        r"config\.yaml: upstreams\.billbee\.base_url: required",
        r"config\.yaml:\d+: audit\.master_key: must decode to 32 bytes",
        r"config\.yaml:\d+: upstreams\.keycom\.credentials\.token: must be 40 hex digits",
        r"^GDPR_GATEWAY_NO_SUCH_THING: unknown variable",
        r"^GDPR_GATEWAY_AUDIT_URL: must start with",
    ]
    for pattern in expected:
        assert any(re.search(pattern, e) for e in errors), pattern
    text_all = str(err.value) + repr(err.value)
    assert "XYZZY" not in text_all and "c2hvcnQ=" not in text_all and "pw@h" not in text_all
    assert_no_secret(text_all)


def test_keys_given_twice_are_errors_with_their_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, FULL.replace("port: 9000", "port: 9000\nport: 9001")), {})
    assert any(e.endswith("config.yaml:4: port: given twice") for e in err.value.errors)


def test_clear_tokens_and_unknown_roles_are_refused(tmp_path: Path) -> None:
    text = FULL.replace(
        "    - name: crm-app",
        "    - name: bad\n      token: plain-XYZZY\n      sha256: nothex\n"
        "      roles: [editor, superuser]\n      systems: [billbee, mars]\n    - name: crm-app",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), {})
    joined = "\n".join(err.value.errors)
    assert "auth.tokens[0].token: tokens in clear are not accepted" in joined
    assert "auth.tokens[0].sha256" in joined
    assert "auth.tokens[0].roles: unknown entries ['superuser']" in joined
    assert "auth.tokens[0].systems: unknown entries ['mars']" in joined
    assert "XYZZY" not in joined


def test_yaml_syntax_error_names_the_line_not_the_text(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 1\naudit:\n  url: [unclosed-XYZZY\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    (message,) = err.value.errors
    assert message.startswith(f"{path}:")
    assert "XYZZY" not in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "- a\n- b\n"), {})
    assert err.value.errors == [f"{tmp_path / 'config.yaml'}: the top level must be a mapping"]


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_jwt_section(tmp_path: Path) -> None:
    (tmp_path / "idp.pem").write_text(_pem() + _pem())
    path = write(tmp_path, FULL.replace(
        "auth:\n",
        "auth:\n  jwt:\n    public_keys_file: idp.pem\n    issuer: https://idp\n"
        "    audience: gdpr-gateway\n    roles_claim: groups\n",
    ))
    s = load_settings(path, {"GDPR_GATEWAY_AUTH_JWT_ALGORITHMS": "ES256"})
    assert s.jwt is not None
    assert len(s.jwt.public_keys) == 2
    assert (s.jwt.issuer, s.jwt.audience) == ("https://idp", "gdpr-gateway")
    assert s.jwt.roles_claim == "groups"
    assert s.jwt.algorithms == ("ES256",)


def test_jwt_refuses_symmetric_algorithms_and_needs_iss_aud(tmp_path: Path) -> None:
    env = {
        "GDPR_GATEWAY_AUTH_JWT_PUBLIC_KEYS": _pem(),
        "GDPR_GATEWAY_AUTH_JWT_ALGORITHMS": "RS256,HS256,none",
    }
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, FULL), env)
    joined = "\n".join(err.value.errors)
    assert "GDPR_GATEWAY_AUTH_JWT_ALGORITHMS: not allowed: HS256, none" in joined
    assert "auth.jwt.issuer: required" in joined
    assert "auth.jwt.audience: required" in joined


def test_jwt_bad_pem_is_reported(tmp_path: Path) -> None:
    env = {
        "GDPR_GATEWAY_AUTH_JWT_PUBLIC_KEYS": (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
        ),
        "GDPR_GATEWAY_AUTH_JWT_ISSUER": "i",
        "GDPR_GATEWAY_AUTH_JWT_AUDIENCE": "a",
    }
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, FULL), env)
    assert err.value.errors == ["GDPR_GATEWAY_AUTH_JWT_PUBLIC_KEYS[0]: not a PEM public key"]


def test_env_name_follows_the_path() -> None:
    assert env_name(("upstreams", "billbee", "credentials", "api_key")) == (
        "GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_API_KEY"
    )


def test_demo_settings_fixed_tokens_and_stable_pseudonym_key(tmp_path: Path) -> None:
    urls = {s: f"http://127.0.0.1:{8081 + i}" for i, s in enumerate(SYSTEMS)}

    def make() -> Settings:
        return demo_settings(
            port=8080,
            state_dir=tmp_path / "state",
            upstream_urls=urls,
            audit_url="sqlite+aiosqlite:///x.db",
            master_key=b"m" * 32,
            signing_key=b"k" * 32,
        )

    first, second = make(), make()
    assert first.pseudonym_key_bytes() == second.pseudonym_key_bytes()
    assert first.hash_salt_bytes() == second.hash_salt_bytes()
    assert len(first.pseudonym_key_bytes()) == 32
    assert (tmp_path / "state" / "pseudonym.key").stat().st_mode & 0o077 == 0
    by_name = {t.name: t for t in first.tokens}
    assert set(by_name) == set(DEMO_TOKENS)
    assert by_name["demo-privacy"].roles == frozenset({"privacy_officer"})
    assert by_name["demo-editor"].sha256 == hashlib.sha256(b"demo-editor").hexdigest()
    assert all(t.systems == frozenset(SYSTEMS) for t in first.tokens)
    keycom = first.upstreams["keycom"].credentials["token"].reveal()
    assert keycom == "0123456789abcdef0123456789abcdef01234567"
    assert first.upstreams["billbee"].rate_limit_per_second == 2.0
    assert first.upstreams["timelog"].options["account"] == "demo"
    assert first.master_key_bytes() == b"m" * 32


def test_demo_settings_refuses_short_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        demo_settings(
            port=1, state_dir=tmp_path, upstream_urls={}, audit_url="sqlite+aiosqlite://",
            master_key=b"short", signing_key=b"k" * 32,
        )
    assert "master_key: must be 32 bytes" in err.value.errors
    assert "upstream_urls: keycom: required" in err.value.errors


def test_the_documented_example_loads(tmp_path: Path) -> None:
    """docs/configuration.md's complete example, with its secret files created here."""
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = doc.split("## A complete example", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    example = example.replace("/run/secrets/", f"{tmp_path}/").replace(
        "/etc/gdpr-gateway/", f"{tmp_path}/"
    )
    files = {
        "audit-url": "postgresql+asyncpg://gateway@db/gateway",
        "audit-master-key": MASTER, "audit-signing-key": SIGNING,
        "pseudonym-key": PSEUDONYM, "hash-salt": SALT,
        "tokens.yaml": f"- {{name: crm, sha256: {'b' * 64}, roles: [editor], systems: ['*']}}",
        "idp.pem": _pem(), "timelog-token": "t", "billbee-api-key": "k",
        "billbee-username": "u", "billbee-password": "p", "sedona-username": "u",
        "sedona-password": "p", "keycom-token": SECRETS["keycom"],
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content + "\n", encoding="utf-8")
    s = load_settings(write(tmp_path, example), {})
    assert s.audit_url == "postgresql+asyncpg://gateway@db/gateway"
    assert s.jwt is not None and s.jwt.issuer == "https://login.example.com/"
    assert s.tokens[0].name == "crm"
    assert s.upstreams["billbee"].rate_limit_per_second == 2.0


def test_missing_secret_file_is_reported(tmp_path: Path) -> None:
    env = _env_only()
    del env["GDPR_GATEWAY_MASKING_HASH_SALT"]
    env["GDPR_GATEWAY_MASKING_HASH_SALT_FILE"] = str(tmp_path / "absent")
    with pytest.raises(ConfigError) as err:
        load_settings(None, env)
    assert err.value.errors == [
        f"GDPR_GATEWAY_MASKING_HASH_SALT_FILE: cannot read file {tmp_path / 'absent'} "
        "(FileNotFoundError)"
    ]


def test_unreadable_config_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "absent.yaml", _env_only())
    assert err.value.errors == [f"{tmp_path / 'absent.yaml'}: cannot read (FileNotFoundError)"]


def test_audit_lock_settings_are_read_and_bounded() -> None:
    s = load_settings(None, _env_only())
    assert (s.audit_lock_wait_seconds, s.audit_lock_connections) == (10.0, 24)  # defaults
    env = {**_env_only(), "GDPR_GATEWAY_AUDIT_LOCK_WAIT_SECONDS": "2.5",
           "GDPR_GATEWAY_AUDIT_LOCK_CONNECTIONS": "8"}  # fmt: skip
    s = load_settings(None, env)
    assert (s.audit_lock_wait_seconds, s.audit_lock_connections) == (2.5, 8)
    env = {**_env_only(), "GDPR_GATEWAY_AUDIT_LOCK_WAIT_SECONDS": "0",
           "GDPR_GATEWAY_AUDIT_LOCK_CONNECTIONS": "0"}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    assert "GDPR_GATEWAY_AUDIT_LOCK_WAIT_SECONDS: must be greater than 0" in caught.value.errors
    assert "GDPR_GATEWAY_AUDIT_LOCK_CONNECTIONS: must be at least 1" in caught.value.errors


def _documented_rows() -> dict[str, str]:
    """``| `key` | `VARIABLE` | default | ...`` rows of docs/configuration.md: key -> default."""
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows: dict[str, str] = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[a-z_.A-Z]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[2]
    return rows


def test_every_key_of_the_schema_is_documented_and_every_documented_key_exists() -> None:
    from service.config_model import document_model
    from service.config_read import leaves

    rows = _documented_rows()
    schema: dict[str, str] = {}
    for path, _ in leaves(document_model(SYSTEMS)):
        generic = ".".join(("upstreams", "SYS", *path[2:])) if path[0] == "upstreams" else None
        dotted = ".".join(path)
        schema[dotted if dotted in rows or generic not in rows else generic] = dotted
    assert set(schema) - set(rows) == set(), "settings docs/configuration.md does not list"
    assert set(rows) - set(schema) == set(), "documented settings the schema does not have"


def test_the_documented_defaults_are_the_schema_s() -> None:
    from service.config_model import UpstreamSection, document_model
    from service.config_read import shapes

    checked = 0
    for key, default in _documented_rows().items():
        number = re.fullmatch(r"`(-?\d+(?:\.\d+)?)`", default)
        if number is None:
            continue
        section: Any = document_model(SYSTEMS)
        *parents, name = key.split(".")
        if parents[:2] == ["upstreams", "SYS"]:
            section, parents = UpstreamSection, parents[2:]
        for part in parents:
            section = shapes(section)[part].section
        assert float(number.group(1)) == section.model_fields[name].default, key
        checked += 1
    assert checked >= 20  # the tables were found
