"""The review page for the compliance office, in a real headless Chromium against the real
gateway: what issue 12's "done when" names, one test each. The browser session runs once
for the module (tests/service/ui_week.py); each test asserts on what it saw.

Screenshots for docs/ui/ are taken on the way; ``UPDATE_UI_SCREENSHOTS=1`` copies them
there (then commit them).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from policies import load_policy_set
from policies.record import build_record
from tests.service.browser import MISSING_MESSAGE, chromium_present
from tests.service.ui_week import (
    MARKUP_ACTIVITY,
    MARKUP_ACTOR,
    MARKUP_REASON,
    SCREENSHOTS,
    Week,
    days_ago,
    run_week,
)

pytestmark = pytest.mark.timeout(120)  # the week runs once, in the first test's setup

REPO = Path(__file__).resolve().parents[2]
DOCS_UI = REPO / "docs" / "ui"


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    if not chromium_present():
        pytest.fail(MISSING_MESSAGE)
    result = asyncio.run(run_week(tmp_path_factory.mktemp("week")))
    if os.environ.get("UPDATE_UI_SCREENSHOTS") == "1":
        DOCS_UI.mkdir(exist_ok=True)
        for name, path in result.screenshots.items():
            shutil.copy(path, DOCS_UI / f"{name}.png")
    return result


def _day(n: int) -> str:
    return days_ago(n)[:10]


def test_the_auditor_reads_the_record_of_processing(week: Week) -> None:
    record = build_record(load_policy_set())
    versions = week.seen["record_versions"]
    assert versions == [f"Policy version {a['policy_version']}" for a in record["activities"]]
    text = week.seen["record_text"]
    for act in record["activities"]:
        assert act["activity"] in text and act["processor"]["name"] in text
        for row in act["data"]:
            assert row["category"] in text
    assert "Transfers to third countries" in text and "standard_contractual_clauses" in text
    assert "user.government_id: 3650 days" in text
    # the Markdown download is the record the API gives for Accept: text/markdown
    assert week.downloads["markdown"] == week.api["markdown"]


def test_every_change_of_billbee_1002_is_on_one_screen_oldest_first(week: Week) -> None:
    assert week.seen["subject_name"] == "billbee/1002"
    rows = week.seen["subject_rows"]
    expected = week.api["subject"]["changes"]
    assert [r["id"] for r in rows] == [c["change_id"] for c in expected]
    assert len(rows) >= 5
    cells = [r["cells"] for r in rows]  # time, who, why, action, fields, outcome, entries
    updates = [c for c in cells if c[3] == "update"]
    assert any(c[4] == "NoSuchField" or "validation_failed" in c[5] for c in updates)
    applied = [c for c in updates if c[5] == "applied"]
    assert [c[4] for c in applied] == [
        "Tel1: *** \u2192 ***", "Email: *** \u2192 ***Tel2: *** \u2192 ***"
    ]
    assert all(c[1] == "demo-editor" and c[2] == "customer_service" for c in applied)
    assert all(c[6] == "intentoutcome" for c in applied)  # the raw entries, a click away
    reveal = next(c for c in cells if c[3] == "reveal")
    assert reveal[1] == "demo-privacy" and reveal[2] == "reason: customer disputes the number"
    assert "+49 30 2222222" not in str(rows)  # masked, never in clear


def test_one_row_per_change_and_a_dangling_intent_is_marked(week: Week) -> None:
    rows = week.seen["changes"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    dangling = [r for r in rows if r["dangling"]]
    assert len(dangling) == 1
    assert dangling[0]["cells"][6] == "no outcome (dangling)"
    assert dangling[0]["cells"][4] == "sedona/2001"
    paired = [r for r in rows if r["cells"][7] == "intentoutcome"]
    assert paired and all(r["cells"][6] == "applied" for r in paired)


def test_the_auditor_sees_last_week_s_refusals_on_the_chart(week: Week) -> None:
    refusals = {
        (bar["day"], bar["code"]): int(bar["count"])
        for bar in week.seen["bars"] if bar["series"] == "refusals"
    }  # fmt: skip
    assert refusals == {
        (_day(5), "customer_archived"): 1,
        (_day(3), "customer_archived"): 2,
        (_day(3), "record_restricted"): 2,
        (_day(2), "validation_failed"): 1,
    }
    drawn = [b for b in week.seen["bars"] if b["series"] == "refusals"]
    assert all(b["height"] > 0 and "refusal-" in b["cls"] for b in drawn)
    days = {b["day"] for b in week.seen["bars"]}
    assert days == {_day(n) for n in range(7)}  # the default range: the last seven days
    changes = {b["day"]: int(b["count"]) for b in week.seen["bars"] if b["series"] == "changes"}
    assert changes[_day(2)] == 1 and changes[_day(0)] >= 2
    reveals = {b["day"]: int(b["count"]) for b in week.seen["bars"] if b["series"] == "reveals"}
    assert reveals[_day(0)] == 1
    assert "refused: customer_archived" in week.seen["legend"]
    table = {(r[0], r[1]): r for r in week.seen["trend_rows"]}
    assert table[(_day(3), "billbee")][4] == "customer_archived 2"
    assert table[(_day(3), "keycom")][4] == "record_restricted 2"


def test_export_and_erase_are_refused_readably_for_an_auditor(week: Week) -> None:
    for key in ("auditor_export", "auditor_erase"):
        message = week.seen[key]
        assert "Forbidden (forbidden)" in message
        assert "roles do not allow this operation" in message


def test_a_privacy_officer_exports_and_erases_the_subject(week: Week) -> None:
    export = week.downloads["export"]
    assert (export["system"], export["customer_id"]) == ("billbee", "1002")
    assert any(e["after"].get("Tel1") == "+49 30 2222222" for e in export["entries"])
    assert export["export_audit_id"] in week.seen["export_message"]
    assert week.seen["erase_disabled_blank"] is True
    assert week.seen["erase_disabled_wrong"] is True
    assert week.seen["confirm_label"] == "Type billbee/1002 to confirm"
    assert "can never be read again" in week.seen["erase_message"]
    actions = [r["cells"][3] for r in week.seen["subject_after"]]
    assert actions[-2:] == ["export", "erase"]  # both audited, on the subject's screen
    erase = week.seen["subject_after"][-1]["cells"]
    assert erase[1] == "demo-privacy" and erase[2] == "reason: Art. 17 request of the customer"
    values = {row[0]: row[1:] for row in week.seen["erased_values"]}
    assert values["Email"][1] == "erased (erasure request)"
    assert week.seen["verify_after_erase"] == "ok"
    assert week.api["verify"]["ok"] is True


def test_an_expired_value_reads_erased_retention_and_verify_still_passes(week: Week) -> None:
    rows = week.seen["expired_subject"]
    expire = next(r["cells"] for r in rows if r["cells"][3] == "expire")
    assert expire[1] == "gdpr-gateway retention"  # the gateway's own job, by itself
    assert expire[2].startswith("reason: retention: the retention period of 2 sealed value(s)")
    values = {row[0]: row[1:] for row in week.seen["expired_values"]}
    assert values["CustomerName2"] == ["erased (retention)", "erased (retention)"]
    assert week.seen["expired_note"].startswith("The values of this subject were erased (retention")
    assert week.seen["verify_after_expiry"] == "ok"


def test_markup_in_every_new_place_a_value_is_shown_stays_text(week: Week) -> None:
    probe = week.seen["markup"]
    assert MARKUP_ACTOR in probe["changes"]  # the changes list
    assert MARKUP_REASON in probe["subject"] and MARKUP_ACTOR in probe["subject"]  # subject
    assert MARKUP_ACTIVITY in probe["record"]  # the record of processing
    assert probe["injected"] == 0 and probe["bold"] == 0
    assert probe["title"] == "Audit review - gdpr-gateway"


def test_no_script_error_or_csp_violation(week: Week) -> None:
    # the expected 403 answers (and the browser's own favicon.ico guess) are logged as
    # network errors; anything else - a CSP violation, a script error - is a failure
    expected = ("status of 403", "/favicon.ico]")
    assert [p for p in week.problems if not any(e in p for e in expected)] == []


def test_the_screenshots_are_taken_and_the_readme_shows_them(week: Week) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in SCREENSHOTS:
        shot = week.screenshots[name].read_bytes()
        assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000
        committed = DOCS_UI / f"{name}.png"
        assert committed.read_bytes().startswith(b"\x89PNG"), committed
        assert f"docs/ui/{name}.png" in readme
    assert re.search(r"\]\(docs/ui/changes\.png\)", readme)
