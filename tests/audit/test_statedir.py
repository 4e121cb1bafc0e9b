"""Where the store and its keys come from: the demo folder, a YAML config, env."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from audit import InvalidAuditInput, load_config, open_demo_state
from audit.statedir import store_url


def test_demo_state_is_created_once_with_private_key_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    url, master, signing = open_demo_state(state)
    assert url == f"sqlite+aiosqlite:///{state / 'audit.db'}"
    assert len(master) == len(signing) == 32 and master != signing
    for name in ("master.key", "signing.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert open_demo_state(state) == (url, master, signing)


def test_config_reads_key_files_relative_to_the_config(tmp_path: Path) -> None:
    master, signing = os.urandom(32), os.urandom(32)
    (tmp_path / "m.key").write_text(base64.b64encode(master).decode())
    (tmp_path / "s.key").write_text(base64.b64encode(signing).decode())
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "audit:\n  url: postgresql+asyncpg://postgres@127.0.0.1:5432/test\n"
        "  master_key_file: m.key\n  signing_key_file: s.key\n"
    )
    settings = load_config(config, env={})
    assert (settings.master_key, settings.signing_key) == (master, signing)
    assert "postgresql" in settings.url
    assert base64.b64encode(master).decode() not in repr(settings)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("audit:\n  url: sqlite+aiosqlite:///x.db\n")
    master, signing = os.urandom(32), os.urandom(32)
    env = {
        "GDPR_GATEWAY_AUDIT_MASTER_KEY": base64.b64encode(master).decode(),
        "GDPR_GATEWAY_AUDIT_SIGNING_KEY": base64.b64encode(signing).decode(),
        "GDPR_GATEWAY_AUDIT_URL": "sqlite+aiosqlite:///y.db",
    }
    settings = load_config(config, env=env)
    assert (settings.url, settings.master_key, settings.signing_key) == (
        "sqlite+aiosqlite:///y.db", master, signing
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audit: [1, 2]\n", "mapping"),
        ("audit:\n  master_key_file: m.key\n", "audit.url"),
        ("audit:\n  url: sqlite+aiosqlite:///x.db\n", "master_key_file"),
        ("audit:\n  url: sqlite+aiosqlite:///x.db\n  master_key_file: nope.key\n", "does not"),
        ("audit: {url: [unclosed\n", "YAML"),
    ],
)
def test_bad_config_gets_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    with pytest.raises(InvalidAuditInput, match=message):
        load_config(config, env={})


def test_bad_key_in_environment_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("audit:\n  url: sqlite+aiosqlite:///x.db\n")
    with pytest.raises(InvalidAuditInput, match="base64"):
        load_config(config, env={"GDPR_GATEWAY_AUDIT_MASTER_KEY": "not base64 !"})
    with pytest.raises(InvalidAuditInput, match="32 bytes"):
        load_config(config, env={"GDPR_GATEWAY_AUDIT_MASTER_KEY": base64.b64encode(b"x").decode()})


def test_file_variables_give_the_url_and_keys_as_kubernetes_mounts_them(tmp_path: Path) -> None:
    """The chart mounts the URL and keys as files and names them in ``*_FILE`` variables
    (the gateway's config reads the same): ``db upgrade`` and ``audit verify`` read them."""
    master, signing = os.urandom(32), os.urandom(32)
    url = "postgresql+asyncpg://gateway:pw@db:5432/gateway"
    (tmp_path / "url").write_text(url + "\n")
    (tmp_path / "m").write_text(base64.b64encode(master).decode() + "\n")
    (tmp_path / "s").write_text(base64.b64encode(signing).decode())
    config = tmp_path / "gateway.yaml"
    config.write_text("port: 8080\n")
    env = {
        "GDPR_GATEWAY_AUDIT_URL_FILE": str(tmp_path / "url"),
        "GDPR_GATEWAY_AUDIT_MASTER_KEY_FILE": str(tmp_path / "m"),
        "GDPR_GATEWAY_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "s"),
    }
    settings = load_config(config, env=env)
    assert (settings.url, settings.master_key, settings.signing_key) == (url, master, signing)
    assert store_url(config, env={"GDPR_GATEWAY_AUDIT_URL_FILE": str(tmp_path / "url")}) == url


def test_url_file_in_the_config_is_read_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("sqlite+aiosqlite:///a.db\n")
    config = tmp_path / "gateway.yaml"
    config.write_text("audit:\n  url_file: url\n")
    assert store_url(config, env={}) == "sqlite+aiosqlite:///a.db"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("audit: {url: x, url_file: u}\n", {}, "not both"),
        ("", {"GDPR_GATEWAY_AUDIT_URL": "x", "GDPR_GATEWAY_AUDIT_URL_FILE": "u"}, "not both"),
        ("", {"GDPR_GATEWAY_AUDIT_URL_FILE": "/nonexistent/url"}, "does not exist"),
        ("", {}, "audit.url"),
    ],
)
def test_url_sources_that_clash_or_are_missing_are_refused(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    with pytest.raises(InvalidAuditInput, match=message):
        store_url(config, env=env)


def test_migrating_needs_the_url_only(tmp_path: Path) -> None:
    """``db upgrade`` gets no keys: the chart's migration hook is given none."""
    config = tmp_path / "gateway.yaml"
    config.write_text("audit:\n  url: sqlite+aiosqlite:///x.db\n")
    assert store_url(config, env={}) == "sqlite+aiosqlite:///x.db"
