"""The ``processing`` section of a policy (policies/processing*.py): checked like the rest
of the file, every error naming file, line and key; compiled into what the record of
processing and the audit retention read."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import PolicyLoadError, load_policy_set
from policies.loader import CATALOG, load_file
from policies.processing import EEA, Retention, Safeguard

BILLBEE = (CATALOG / "billbee.yaml").read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line holding ``needle``."""
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


def load_errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "billbee.yaml"
    path.write_text(text, encoding="utf-8")
    policy, errors = load_file(path)
    assert policy is None and errors, "the broken file loaded"
    return errors


def test_every_shipped_policy_states_its_processing() -> None:
    policies = load_policy_set()
    for system in policies:
        proc = policies[system].processing
        assert proc is not None, system
        assert proc.controller.name and proc.controller.contact, system
        assert proc.data_subjects and proc.upstream_retention, system
        assert proc.retention.default_days >= 1, system
        used = {p for spec in policies[system].walk() for p in spec.purposes}
        assert set(proc.purposes) == used, system


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        ("  activity: Customer", "  actvity: Customer", "actvity:",
         "processing.actvity: unknown key (valid: activity, controller, data_subjects, dpo, "
         "measures, processor, purposes, recipients, representative, retention, transfers, "
         "upstream_retention)"),
        ("    country: DE\n    contract", "    country: Germany\n    contract", "Germany",
         "processing.processor.country: expected an ISO 3166 alpha-2 country code (upper "
         "case), got 'Germany'"),
        ("    default: 1095", "    default: 0", "default: 0",
         "processing.retention.default: expected a number of days from 1 to 36500, got 0"),
        ("      user.government_id: 3650", "      user.goverment_id: 3650", "goverment_id",
         "processing.retention.categories.user.goverment_id: unknown data category "
         "'user.goverment_id' in the fideslang taxonomy; nearest: user.government_id, "
         "user.government_id.immigration, user.government_id.passport_number"),
        ("kind: processor, country: DE}", "kind: vendor, country: DE}", "kind: vendor",
         "processing.recipients[0].kind: unknown recipient kind 'vendor' (valid: processor, "
         "internal, third_party, authority)"),
        ("  transfers: []", "  transfers: [{country: FR, recipient: X, safeguard: "
         "adequacy_decision}]", "country: FR",
         "processing.transfers[0].country: FR lies in the EEA: not a transfer to a third "
         "country (list the recipient under recipients)"),
        ("  transfers: []", "  transfers: [{country: US, recipient: X, safeguard: trust}]",
         "safeguard: trust",
         "processing.transfers[0].safeguard: unknown safeguard 'trust' (valid: "
         "adequacy_decision, standard_contractual_clauses, binding_corporate_rules, "
         "derogation)"),
        ("    contact: privacy@example.com\n", "", "  controller:",
         "processing.controller.contact: required key is missing"),
        ("    billing: invoicing", "    marketing: invoicing", "marketing:",
         "processing.purposes.marketing: unknown purpose 'marketing' (valid: "
         "customer_service, billing, contract, legal_obligation)"),
    ],
)
def test_a_wrong_processing_key_names_file_line_and_key(
    tmp_path: Path, old: str, new: str, needle: str, expected: str
) -> None:
    assert old in BILLBEE
    broken = BILLBEE.replace(old, new, 1)
    errors = load_errors(tmp_path, broken)
    assert f"billbee.yaml:{line_of(broken, needle)} {expected}" in errors, errors


def test_every_purpose_a_field_may_be_changed_for_is_described(tmp_path: Path) -> None:
    broken = BILLBEE.replace("    billing: invoicing and collecting payment (Art. 6(1)(b))\n", "")
    errors = load_errors(tmp_path, broken)
    assert errors == [
        f"billbee.yaml:{line_of(broken, '  purposes:')} processing.purposes: describe every "
        "purpose a field may be changed for; missing: billing"
    ]


def test_a_processing_section_missing_its_parts_lists_each(tmp_path: Path) -> None:
    start = BILLBEE.index("processing:\n")
    end = BILLBEE.index("\nedit_profiles:")
    broken = BILLBEE[:start] + "processing:\n  activity: Something\n" + BILLBEE[end:]
    errors = load_errors(tmp_path, broken)
    line = line_of(broken, "  activity: Something")
    missing = ("controller", "data_subjects", "purposes", "recipients", "transfers",
               "upstream_retention", "retention")  # fmt: skip
    for name in missing:
        assert f"billbee.yaml:{line - 1} processing.{name}: required key is missing" in errors


def test_a_policy_without_processing_still_loads(tmp_path: Path) -> None:
    start = BILLBEE.index("processing:\n")
    end = BILLBEE.index("\nedit_profiles:")
    (tmp_path / "billbee.yaml").write_text(BILLBEE[:start] + BILLBEE[end:], encoding="utf-8")
    policy = load_policy_set([tmp_path])["billbee"]
    assert policy.processing is None
    assert policy.retention_days(["Email"]) is None


def test_retention_takes_the_most_specific_category() -> None:
    retention = Retention(1095, {"user.contact": 700, "user.contact.email": 30})
    assert retention.days_for("user.contact.email") == 30
    assert retention.days_for("user.contact.phone_number") == 700
    assert retention.days_for("user.contact") == 700
    assert retention.days_for("user.name") == 1095
    assert retention.days_for(None) == 1095


def test_the_retention_of_an_entry_is_its_longest_kept_value() -> None:
    policy = load_policy_set()["billbee"]
    assert policy.retention_days(["Email", "Tel1"]) == 1095
    assert policy.retention_days(["Email", "VatId"]) == 3650  # a VAT id: a tax record
    assert policy.retention_days(["MetaData[3].Value"]) == 1095
    assert policy.retention_days([]) is None
    keycom = load_policy_set()["keycom"]
    assert keycom.retention_days(["personal_id"]) == 365
    assert keycom.retention_days(["personal_id", "email"]) == 1095


def test_the_shipped_transfers_leave_the_eea_under_a_safeguard() -> None:
    sedona = load_policy_set()["sedona"].processing
    assert sedona is not None
    (transfer,) = sedona.transfers
    assert transfer.country not in EEA
    assert transfer.safeguard is Safeguard.STANDARD_CONTRACTUAL_CLAUSES


def test_a_broken_processing_section_stops_the_whole_set(tmp_path: Path) -> None:
    (tmp_path / "billbee.yaml").write_text(
        BILLBEE.replace("    default: 1095", "    default: forever"), encoding="utf-8"
    )
    with pytest.raises(PolicyLoadError) as caught:
        load_policy_set([tmp_path])
    assert any("processing.retention.default" in e for e in caught.value.errors)
