"""The ops commands, run in-process through ``service.cli.main``."""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import sqlite3
from pathlib import Path

import pytest

from audit import AuditLog, Outcome, open_demo_state
from audit.crypto import public_key_of
from service.cli import main
from tests.audit.conftest import EMAIL_AFTER, EMAIL_BEFORE, make_intent


def _fill(state: Path, n: int = 5) -> list[str]:
    url, master, signing = open_demo_state(state)

    async def run() -> list[str]:
        log = await AuditLog.open(url, master_key=master, signing_key=signing)
        try:
            return [await log.record(make_intent(str(i)), Outcome("applied")) for i in range(n)]
        finally:
            await log.close()

    return asyncio.run(run())


@pytest.fixture
def state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "demo-state"
    assert main(["db", "upgrade", "--state-dir", str(directory)]) == 0
    assert "up to date" in capsys.readouterr().out
    return directory


def test_verify_ok_then_broken(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _fill(state)
    assert main(["audit", "verify", "--state-dir", str(state)]) == 0
    captured = capsys.readouterr()
    assert "entries checked: 5" in captured.out and "chain OK" in captured.out
    assert "entries/s" not in captured.err  # no progress bar: not a terminal, not asked
    con = sqlite3.connect(state / "audit.db")
    con.execute("UPDATE audit_entry SET body = replace(body, 'new note', 'forged') WHERE seq = 2")
    con.commit()
    con.close()
    assert main(["audit", "verify", "--state-dir", str(state)]) == 1
    out = capsys.readouterr().out
    assert f"first bad entry: {ids[1]}" in out
    assert "entries checked: 1" in out and "BROKEN" in out


def test_verify_with_config_file(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(state, 2)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"audit:\n  url: sqlite+aiosqlite:///{state / 'audit.db'}\n"
        f"  master_key_file: {state / 'master.key'}\n  signing_key_file: {state / 'signing.key'}\n"
    )
    assert main(["audit", "verify", "--config", str(config), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "entries checked: 2" in captured.out
    assert "verify" in captured.err and "entries" in captured.err  # the bar, when asked


def test_verify_on_a_missing_store_explains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "--state-dir", str(tmp_path / "none")]) == 2
    assert "db upgrade" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_is_masked(
    state: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _fill(state, 3)
    out = tmp_path / f"export.{fmt}"
    assert (
        main(["audit", "export", "--state-dir", str(state), "--format", fmt, "--output", str(out)])
        == 0
    )
    text = out.read_text()
    assert EMAIL_AFTER not in text and EMAIL_BEFORE not in text
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert [r["audit_id"] for r in rows] == ids
        assert rows[0]["after"]["Email"] == "***"
    else:
        rows = list(csv.DictReader(text.splitlines()))
        assert [r["audit_id"] for r in rows] == ids
        assert json.loads(rows[0]["after"])["Email"] == "***"
    assert "exported 3 entries" in capsys.readouterr().err


def test_public_key_matches_the_signing_key(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, signing = open_demo_state(state)
    assert main(["audit", "public-key", "--state-dir", str(state)]) == 0
    assert base64.b64decode(capsys.readouterr().out.strip()) == public_key_of(signing)
    assert main(["audit", "public-key", "--state-dir", str(state), "--format", "hex"]) == 0
    assert capsys.readouterr().out.strip() == public_key_of(signing).hex()


def test_rotate_master_key_in_the_demo(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _fill(state, 2)
    _, old_master, _ = open_demo_state(state)
    assert main(["audit", "rotate-master-key", "--state-dir", str(state)]) == 0
    assert "re-wrapped 2 subject keys" in capsys.readouterr().out
    url, new_master, signing = open_demo_state(state)
    assert new_master != old_master

    async def reveal() -> object:
        log = await AuditLog.open(url, master_key=new_master, signing_key=signing)
        try:
            clear, _ = await log.reveal(ids[0], actor="o", roles=("privacy_officer",),
                                        reason="check", request_id="r")  # fmt: skip
            return clear["after"]["Email"]
        finally:
            await log.close()

    assert asyncio.run(reveal()) == EMAIL_AFTER
    assert main(["audit", "verify", "--state-dir", str(state)]) == 0


def test_db_upgrade_with_a_config_needs_only_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chart's migration hook mounts the store URL as a file and no keys."""
    db = tmp_path / "audit.db"
    (tmp_path / "audit-url").write_text(f"sqlite+aiosqlite:///{db}\n")
    config = tmp_path / "gateway.yaml"
    config.write_text("port: 8080\n")
    monkeypatch.setenv("GDPR_GATEWAY_AUDIT_URL_FILE", str(tmp_path / "audit-url"))
    for name in ("GDPR_GATEWAY_AUDIT_MASTER_KEY", "GDPR_GATEWAY_AUDIT_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert "up to date" in capsys.readouterr().out
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "audit_entry" in tables
