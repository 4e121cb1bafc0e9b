"""``gdpr-gateway policy check`` and ``policy show`` (service/commands/policy.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from policies.loader import CATALOG
from service.cli import main


def test_check_shipped_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "OK billbee.yaml", "OK keycom.yaml", "OK sedona.yaml", "OK timelog.yaml"]


def test_check_lists_every_error_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (CATALOG / "sedona.yaml").read_text(encoding="utf-8")
    broken = text.replace("max_length: 60", "max_length: sixty").replace(
        "category: user.name", "category: user.nmae")
    (tmp_path / "sedona.yaml").write_text(broken, encoding="utf-8")
    shutil.copy(CATALOG / "keycom.yaml", tmp_path / "keycom.yaml")
    assert main(["policy", "check", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    lines = broken.splitlines()
    sixty = [i + 1 for i, ln in enumerate(lines) if "sixty" in ln]
    nmae = [i + 1 for i, ln in enumerate(lines) if "user.nmae" in ln]
    assert len(errors) == len(sixty) + len(nmae)
    assert f"sedona.yaml:{sixty[0]} fields.CustomerName.max_length: expected an integer, " \
           "got 'sixty'" in errors
    assert all(e.startswith("sedona.yaml:") for e in errors)
    assert captured.out.startswith("OK keycom.yaml")


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml:1: cannot read the file" in capsys.readouterr().err


def test_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "keycom"]) == 0
    out = capsys.readouterr().out
    assert "rule restricted_record" in out
    row = next(line for line in out.splitlines() if line.startswith("personal_id "))
    assert "restricted" in row and "privacy_officer" in row and "redact" in row
    header = next(line for line in out.splitlines() if line.startswith("field "))
    assert "mask:editor" in header and "mask:admin" in header


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "timelog", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "put" and doc["id_field"] == "CustomerID"
    email = next(r for r in doc["fields"] if r["path"] == "Email")
    assert email["masking"] == {"editor": "partial", "auditor": "pseudonym",
                                "privacy_officer": "clear", "admin": "redact"}


def test_show_unknown_system(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "nosuch"]) == 1
    assert "unknown system 'nosuch'" in capsys.readouterr().err
