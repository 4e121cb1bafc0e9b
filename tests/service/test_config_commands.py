"""Every command reads the configuration through one loader (service.config).

``serve`` needs all of it, ``db upgrade`` the store's URL only (a migration job is given
no keys), the ``audit`` commands the URL and both keys - but each checks the whole
configuration the same way, so a configuration ``serve`` accepts, every command accepts:
each documented form (inline values, ``*_file`` keys, ``GDPR_GATEWAY_*`` variables,
``*_FILE`` variables) is run through ``db upgrade``, ``serve`` and ``audit verify``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import main
from service.config import ConfigError, env_name, load_audit_access, load_settings, load_store_url
from service.registry import SYSTEMS
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import upstream_config

MASTER, SIGNING = os.urandom(32), os.urandom(32)
KEYS = {
    ("audit", "master_key"): base64.b64encode(MASTER).decode(),
    ("audit", "signing_key"): base64.b64encode(SIGNING).decode(),
    ("masking", "pseudonym_key"): base64.b64encode(os.urandom(32)).decode(),
    ("masking", "hash_salt"): base64.b64encode(os.urandom(16)).decode(),
}
FORMS = ("inline", "file_keys", "variables", "file_variables")


def settings_by_path(tmp_path: Path, port: int) -> dict[tuple[str, ...], Any]:
    """A whole configuration as path -> value (upstreams on closed ports: serve starts
    without reaching them)."""
    values: dict[tuple[str, ...], Any] = {
        ("host",): "127.0.0.1",
        ("port",): port,
        ("shutdown", "drain_seconds"): 0,
        ("audit", "url"): f"sqlite+aiosqlite:///{tmp_path}/audit.db",
        **KEYS,
    }
    for i, system in enumerate(SYSTEMS, start=1):
        section = upstream_config(system, f"http://127.0.0.1:{i}")
        values[("upstreams", system, "base_url")] = section["base_url"]
        for kind in ("credentials", "options"):
            for key, value in section.get(kind, {}).items():
                values[("upstreams", system, kind, key)] = value
    return values


def secret(path: tuple[str, ...]) -> bool:
    return path in KEYS or path == ("audit", "url") or "credentials" in path


def nest(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in values.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def configuration(form: str, tmp_path: Path, port: int) -> tuple[Path, dict[str, str]]:
    """(config file, environment) giving the same settings in one documented form."""
    values = settings_by_path(tmp_path, port)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    in_file: dict[tuple[str, ...], Any] = {}
    env: dict[str, str] = {}
    for path, value in values.items():
        if form == "inline" or (form in ("file_keys", "file_variables") and not secret(path)):
            in_file[path] = value
        elif form == "file_keys":
            (secrets_dir / "_".join(path)).write_text(f"{value}\n")
            in_file[(*path[:-1], path[-1] + "_file")] = f"secrets/{'_'.join(path)}"
        elif form == "variables":
            env[env_name(path)] = str(value)
        else:  # file_variables: secrets as files named by *_FILE
            file = secrets_dir / "_".join(path)
            file.write_text(f"{value}\n")
            env[env_name(path) + "_FILE"] = str(file)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(nest(in_file)) if in_file else "{}\n")
    return config, env


def ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "serve did not become ready"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)


@pytest.mark.parametrize("form", FORMS)
def test_db_upgrade_serve_and_audit_accept_each_documented_form(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_block()
    config, env = configuration(form, tmp_path, port)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(config, os.environ)
    assert (settings.master_key_bytes(), settings.port) == (MASTER, port)
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert "up to date" in capsys.readouterr().out
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    try:
        ready(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "chain OK" in capsys.readouterr().out


# -- what db upgrade and the audit commands read ----------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    return config


def test_migrating_needs_the_url_only(tmp_path: Path) -> None:
    """The chart's migration hook is given a config with the URL and no key."""
    config = write(tmp_path, "audit:\n  url: sqlite+aiosqlite:///x.db\n")
    assert load_store_url(config, {}) == "sqlite+aiosqlite:///x.db"
    with pytest.raises(ConfigError) as caught:
        load_audit_access(config, {})
    assert [e.split(": ", 1)[1] for e in caught.value.errors] == [
        "audit.master_key: required (or GDPR_GATEWAY_AUDIT_MASTER_KEY)",
        "audit.signing_key: required (or GDPR_GATEWAY_AUDIT_SIGNING_KEY)",
    ]
    url = tmp_path / "url"
    url.write_text("postgresql+asyncpg://gateway@db:5432/gateway\n")
    chart = write(tmp_path, "{}\n")  # the hook's config when the URL is a mounted secret
    assert load_store_url(chart, {"GDPR_GATEWAY_AUDIT_URL_FILE": str(url)}) == (
        "postgresql+asyncpg://gateway@db:5432/gateway"
    )


def test_audit_commands_read_keys_relative_to_the_config_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.key").write_text(KEYS[("audit", "master_key")])
    (tmp_path / "s.key").write_text(KEYS[("audit", "signing_key")])
    config = write(tmp_path, "audit:\n  url_file: url\n  master_key_file: m.key\n"
                             "  signing_key_file: s.key\n")  # fmt: skip
    (tmp_path / "url").write_text("sqlite+aiosqlite:///a.db\n")
    access = load_audit_access(config, {})
    assert (access.url, access.master_key, access.signing_key) == (
        "sqlite+aiosqlite:///a.db", MASTER, SIGNING
    )  # fmt: skip
    assert KEYS[("audit", "master_key")] not in repr(access)
    other = os.urandom(32)
    env = {"GDPR_GATEWAY_AUDIT_MASTER_KEY": base64.b64encode(other).decode(),
           "GDPR_GATEWAY_AUDIT_URL": "sqlite+aiosqlite:///b.db"}  # fmt: skip
    access = load_audit_access(config, env)
    assert (access.url, access.master_key) == ("sqlite+aiosqlite:///b.db", other)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("audit: [1, 2]\n", {}, "gateway.yaml:1: audit: must be a mapping"),
        ("audit: {url: x, url_file: u}\n", {}, "audit.url_file: give either url or url_file"),
        ("", {"GDPR_GATEWAY_AUDIT_URL": "x", "GDPR_GATEWAY_AUDIT_URL_FILE": "u"},
         "GDPR_GATEWAY_AUDIT_URL_FILE: give either"),
        ("", {"GDPR_GATEWAY_AUDIT_URL_FILE": "/nonexistent/url"},
         "GDPR_GATEWAY_AUDIT_URL_FILE: cannot read file /nonexistent/url (FileNotFoundError)"),
        ("", {}, "gateway.yaml: audit.url: required (or GDPR_GATEWAY_AUDIT_URL)"),
        ("audit: {url: [unclosed\n", {}, "gateway.yaml:2: YAML syntax error"),
        # db upgrade checks what serve checks, beyond the URL
        ("audit: {url: 'sqlite+aiosqlite:///x.db', ulr: x}\n", {}, "audit.ulr: unknown key"),
        ("port: eighty\naudit: {url: 'sqlite+aiosqlite:///x.db'}\n", {},
         "gateway.yaml:1: port: must be an integer"),
        ("audit: {url: 'sqlite+aiosqlite:///x.db'}\n", {"GDPR_GATEWAY_AUDIT_MASTER_KEY": "!"},
         "GDPR_GATEWAY_AUDIT_MASTER_KEY: must be base64"),
        ("audit: {url: 'sqlite+aiosqlite:///x.db'}\n", {"GDPR_GATEWAY_AUDIT_URL_TYPO": "x"},
         "GDPR_GATEWAY_AUDIT_URL_TYPO: unknown variable"),
    ],
)  # fmt: skip
def test_db_upgrade_refuses_what_serve_refuses(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    config = write(tmp_path, text)
    for load in (load_store_url, load_settings):
        with pytest.raises(ConfigError) as caught:
            load(config, env)
        assert any(message in e for e in caught.value.errors), (load, caught.value.errors)


def test_a_policies_dir_must_exist_only_where_it_is_read(tmp_path: Path) -> None:
    """The chart's migration job and its `helm test` pod are not given the policies."""
    port = free_block()
    config, _ = configuration("inline", tmp_path, port)
    data = yaml.safe_load(config.read_text())
    data["policies_dir"] = "not-mounted-here"
    config.write_text(yaml.safe_dump(data))
    assert load_store_url(config, {}).startswith("sqlite+aiosqlite:///")
    assert load_audit_access(config, {}).master_key == MASTER
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert caught.value.errors == [f"{config}:N: policies_dir: not a directory".replace(
        ":N:", f":{config.read_text().splitlines().index('policies_dir: not-mounted-here') + 1}:"
    )]


def test_policy_commands_read_the_policies_the_configuration_puts_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = SYSTEMS["billbee"].policy.read_text(encoding="utf-8")
    (policies / "billbee.yaml").write_text(shipped)
    config, _ = configuration("inline", tmp_path, free_block())
    data = yaml.safe_load(config.read_text())
    data["policies_dir"] = "policies"
    config.write_text(yaml.safe_dump(data))

    assert main(["policy", "check", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("OK billbee.yaml: system billbee")
    assert main(["policy", "show", "billbee", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["system"] == "billbee"
    (policies / "billbee.yaml").write_text(shipped.replace("mode: put", "mode: sideways"))
    assert main(["policy", "check", "--config", str(config)]) == 1
    assert "billbee.yaml:" in capsys.readouterr().err

    del data["policies_dir"]  # none: each system's policy file of the registry
    config.write_text(yaml.safe_dump(data))
    assert main(["policy", "check", "--config", str(config)]) == 0
    assert capsys.readouterr().out.count("OK ") == len(SYSTEMS)

    data["policies_dir"] = "nowhere"  # read by this command: it must exist
    config.write_text(yaml.safe_dump(data))
    assert main(["policy", "check", "--config", str(config)]) == 2
    assert "policies_dir: not a directory" in capsys.readouterr().err
