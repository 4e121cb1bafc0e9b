"""The record of processing activities (GDPR Art. 30) generated from the policies
(policies/record.py, policies/record_render.py, ``gdpr-gateway policy record``).

The golden file pins the shipped catalog's record. When a policy changes on purpose,
regenerate it and review the difference like any other change of the record:

    .venv/bin/gdpr-gateway policy record --format json --output tests/policies/golden/record.json
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from policies import load_policy_set
from policies.loader import CATALOG
from policies.record import GATEWAY_MEASURES, UNSTATED, build_record
from policies.record_render import CSV_COLUMNS, to_csv, to_markdown
from service.cli import main

ACTIVITY = (
    "  activity: Customer master data of the online shop (orders, invoices, shipping) in Billbee"
)
GOLDEN = Path(__file__).with_name("golden") / "record.json"
REGENERATE = (
    "the record of the shipped catalog changed: review it, then regenerate with "
    "`.venv/bin/gdpr-gateway policy record --format json --output "
    "tests/policies/golden/record.json`"
)


def test_the_shipped_catalog_s_record_is_the_golden_one() -> None:
    record = build_record(load_policy_set())
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert record == golden, REGENERATE


def test_the_record_names_the_policy_versions_it_was_made_from() -> None:
    policies = load_policy_set()
    record = build_record(policies)
    assert record["policies"] == [
        {"system": s, "version": policies[s].version, "file": f"{s}.yaml"}
        for s in ("billbee", "keycom", "sedona", "timelog")
    ]
    for act in record["activities"]:
        assert act["policy_version"] == policies[act["system"]].version


def test_what_a_compliance_reader_looks_for_is_in_each_activity() -> None:
    record = build_record(load_policy_set())
    billbee = next(a for a in record["activities"] if a["system"] == "billbee")
    email = next(r for r in billbee["data"] if r["category"] == "user.contact.email")
    # which fields, for which purposes, by whom, who sees them in clear, how long kept
    assert "Email" in email["fields"] and "DefaultMailAddress.Value" in email["fields"]
    assert email["purposes"] == ["contract", "customer_service", "legal_obligation"]
    assert email["editable_by"] == ["editor", "privacy_officer"]
    assert email["in_clear_for"] == ["privacy_officer"]
    assert email["masking"]["auditor"] == "pseudonym"
    assert email["audit_log"] == {"sealed": True, "retention_days": 1095}
    vat = next(r for r in billbee["data"] if r["category"] == "user.government_id")
    assert vat["audit_log"]["retention_days"] == 3650
    # internal data (ids, codes) is not listed as personal data
    assert all(r["sensitivity"] in ("personal", "restricted") for r in billbee["data"])
    assert not any("ArchivedAt" in r["fields"] for r in billbee["data"])
    assert billbee["processor"]["name"] == "Billbee GmbH"
    assert billbee["transfers"] == []
    assert billbee["security"][: len(GATEWAY_MEASURES)] == list(GATEWAY_MEASURES)
    keycom = next(a for a in record["activities"] if a["system"] == "keycom")
    name = next(r for r in keycom["data"] if r["category"] == "user.name")
    # a restricted record raises the protection: then a privacy officer only
    assert name["raised"] == [{
        "rule": "restricted_record", "sensitivity": "restricted",
        "editable_by": ["privacy_officer"], "in_clear_for": ["privacy_officer"],
        "masking": {"editor": "redact", "auditor": "redact", "privacy_officer": "clear",
                    "admin": "redact"},
    }]  # fmt: skip
    sedona = next(a for a in record["activities"] if a["system"] == "sedona")
    assert [t["country"] for t in sedona["transfers"]] == ["US"]


def test_a_policy_without_processing_shows_its_gaps(tmp_path: Path) -> None:
    text = (CATALOG / "billbee.yaml").read_text(encoding="utf-8")
    start, end = text.index("processing:\n"), text.index("\nedit_profiles:")
    (tmp_path / "billbee.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    record = build_record(load_policy_set([tmp_path]))
    (act,) = record["activities"]
    assert act["stated"] is False and act["gaps"] == list(UNSTATED)
    assert act["controller"] is None and act["data"]  # what the fields say is still there
    assert all(r["audit_log"]["retention_days"] is None for r in act["data"])
    assert "**Not stated in the policy:**" in to_markdown(record)


def test_markdown_names_every_system_version_and_category() -> None:
    record = build_record(load_policy_set())
    text = to_markdown(record)
    assert text.startswith("# Record of processing activities (GDPR Art. 30(1))\n")
    for act in record["activities"]:
        assert f"Policy version: `{act['policy_version']}`" in text
        for row in act["data"]:
            assert f"| {row['category']} ({row['category_name']}) |" in text


def test_policy_text_never_breaks_the_markdown_table_or_becomes_markup(tmp_path: Path) -> None:
    text = (CATALOG / "billbee.yaml").read_text(encoding="utf-8").replace(
        ACTIVITY, "  activity: '<img src=x> a | b'", 1
    ).replace("    name: Example Group Oy", "    name: 'Evil | <script>x</script>'", 1)
    (tmp_path / "billbee.yaml").write_text(text, encoding="utf-8")
    markdown = to_markdown(build_record(load_policy_set([tmp_path])))
    assert "<img" not in markdown and "<script>" not in markdown
    assert "&lt;img src=x&gt; a \\| b" in markdown
    assert "| Controller | Evil \\| &lt;script&gt;x&lt;/script&gt;, " in markdown


def test_csv_has_one_row_per_category_and_no_formula(tmp_path: Path) -> None:
    text = (CATALOG / "billbee.yaml").read_text(encoding="utf-8").replace(
        ACTIVITY, "  activity: '=HYPERLINK(1)'", 1
    )
    (tmp_path / "billbee.yaml").write_text(text, encoding="utf-8")
    record = build_record(load_policy_set([tmp_path]))
    rows = list(csv.DictReader(io.StringIO(to_csv(record))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(record["activities"][0]["data"])
    assert {r["activity"] for r in rows} == {"'=HYPERLINK(1)"}


@pytest.mark.parametrize("fmt", ["json", "markdown", "csv"])
def test_the_command_writes_each_format(
    fmt: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = build_record(load_policy_set())
    assert main(["policy", "record", "--format", fmt]) == 0
    out = capsys.readouterr().out
    expected = {"json": json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                "markdown": to_markdown(record), "csv": to_csv(record)}[fmt]  # fmt: skip
    assert out == expected
    target = tmp_path / f"record.{fmt}"
    assert main(["policy", "record", "--format", fmt, "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == expected


def test_the_command_refuses_invalid_policies_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (CATALOG / "billbee.yaml").read_text(encoding="utf-8")
    (tmp_path / "billbee.yaml").write_text(
        text.replace("  transfers: []", "  transfers: [{country: US}]"), encoding="utf-8"
    )
    assert main(["policy", "record", "--policies", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    line = next(i + 1 for i, ln in enumerate(text.splitlines()) if ln == "  transfers: []")
    assert f"billbee.yaml:{line} processing.transfers[0].recipient: required key is missing" in err


def test_the_command_reports_an_unwritable_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "record.md"
    assert main(["policy", "record", "--output", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err
