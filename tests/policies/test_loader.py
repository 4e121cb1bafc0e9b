"""Loading: every shipped file, every seed field named, and errors that name file:line key."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from policies import PolicyLoadError, PolicySet, load_policy_set
from policies.loader import CATALOG
from policies.model import SENSITIVITY_RANK
from policies.taxonomy import DATA_CATEGORIES

SHIPPED = sorted(CATALOG.glob("*.yaml"))

BILL_FIELDS = (
    "CustomerBillId", "CustomerId", "IsCommercial", "BillName", "Address1", "Address2",
    "Address3", "City", "State", "Zip", "County", "ZipExt", "CountryAbbrev", "Phone1", "Phone2",
    "Fax", "Email", "IsPrimary", "Inactive", "BranchCode", "EmailInvoices", "BusinessName2",
)
# Every field each vendor documents (docs/vendors/*.txt and UPSTREAMS.md), nested included.
SEED_FIELDS = {
    "timelog": (
        "Address Address2 Address3 City CountryID CreditorID CurrencyID CustomerID CustomerNo "
        "CustomerSince CustomerStatusID Email Fax IndustryID InvoicingAddress "
        "InvoicingAddress2 InvoicingAddress3 InvoicingAddressCity InvoicingAddressCountryID "
        "InvoicingAddressState InvoicingAddressZipCode InvoicingName Name NickName "
        "OrganizationNo Phone PrimaryKAMID SecondaryKAMID State UseInvoicingAddress VatNo "
        "Website ZipCode ID DefaultMileageDistance"
    ),
    "billbee": (
        "RestoredAt Number Name LanguageId Type Tel2 Tel1 Email Id VatId PriceGroupId "
        "ArchivedAt MetaData MetaData[].Id MetaData[].SubType MetaData[].TypeName "
        "MetaData[].TypeId MetaData[].Value "
        + " ".join(
            f"{obj}{sub}"
            for obj in (
                "DefaultFax", "DefaultStatusUpdatesMailAddress", "DefaultMailAddress",
                "DefaultCommercialMailAddress", "DefaultPhone1", "DefaultPhone2",
            )
            for sub in ("", ".Id", ".SubType", ".TypeName", ".TypeId", ".Value")
        )
    ),
    "sedona": (
        "CustomerId CustomerNumber CustomerName StatusCode TypeCode CollectionStatusCode "
        "SalespersonCode TermCode TaxExemptNum BlanketPO BlanketPOExpire OldCustomerNumber "
        "LastStatementDate NoLateFees NoStatements NoCollections OkToIncreaseDate "
        "StatementBalance PrintSiteOnInvoices PrintStatements PrintCycleInvoices "
        "RollUpRecurring CustomerSince BranchCode CustomerGroupID GroupCode Group2Code "
        "CustomerName2 MasterAccountCode CustomerRelationCode IsMaster MasterAccountBilling "
        "BalanceDue TotalActiveRMR TotalActiveRAR FullNameAndNumber CustomerBillPrimary "
        + " ".join(
            f"CustomerBillPrimary.{sub}"
            for sub in BILL_FIELDS
        )
    ),
    "keycom": (
        "address_id language_id restricted_type_id status_id type_id apartment_id "
        "cooperative_date cooperative_member cooperative_reimbursement_date cooperative_sum "
        "country email name name_extension number phone modified id identification "
        "invoicing_country invoice_name editable_by_customer sms_disabled note phone2 "
        "sms_numbers personal_id water_database_id"
    ),
}
KEYCOM_GDPR_PROTECTED = ("email", "name", "name_extension", "phone", "invoice_name", "phone2",
                         "personal_id")


def test_every_shipped_file_loads(policy_set: PolicySet) -> None:
    assert [p.stem for p in SHIPPED] == ["billbee", "keycom", "sedona", "timelog"]
    assert policy_set.systems == ("billbee", "keycom", "sedona", "timelog")
    for path in SHIPPED:
        one = load_policy_set([path])
        assert one.systems == (path.stem,)
        assert one[path.stem].version == policy_set[path.stem].version


@pytest.mark.parametrize("system", sorted(SEED_FIELDS))
def test_policy_names_every_field_the_upstream_knows(policy_set: PolicySet, system: str) -> None:
    named = {row["path"] for row in policy_set[system].field_table()}
    assert set(SEED_FIELDS[system].split()) <= named
    # and nothing the vendor does not know (array item rows are ours)
    assert {p for p in named if not p.endswith("[]")} == set(SEED_FIELDS[system].split())


@pytest.mark.parametrize(
    ("system", "mode", "id_field"),
    [("timelog", "put", "CustomerID"), ("billbee", "put", "Id"), ("sedona", "put", "CustomerId"),
     ("keycom", "patch", "id")],
)
def test_mode_and_id_field(policy_set: PolicySet, system: str, mode: str, id_field: str) -> None:
    policy = policy_set[system]
    assert (policy.mode, policy.id_field) == (mode, id_field)
    assert id_field not in policy.writable_fields
    assert re.fullmatch(r"[0-9a-f]{64}", policy.version)


def test_timelog_write_names_and_read_only_read_model_fields(policy_set: PolicySet) -> None:
    timelog = policy_set["timelog"]
    assert {"CustomerNo", "VatNo"} <= timelog.writable_fields
    assert not {"No", "VATNo"} & set(timelog.fields)
    for name in ("ID", "DefaultMileageDistance", "CustomerID"):
        assert timelog.fields[name].read_only
    assert timelog.fields["CustomerID"].required
    assert len(timelog.writable_fields) == 32


def test_keycom_gdpr_protected_fields_are_personal_or_higher(policy_set: PolicySet) -> None:
    keycom = policy_set["keycom"]
    for name in KEYCOM_GDPR_PROTECTED:
        assert SENSITIVITY_RANK[keycom.fields[name].sensitivity] >= SENSITIVITY_RANK["personal"]


def test_every_category_is_in_the_taxonomy(policy_set: PolicySet) -> None:
    for system in policy_set.systems:
        for spec in policy_set[system].walk():
            assert spec.category is None or spec.category in DATA_CATEGORIES


def test_contact_fields_are_editable_for_customer_service(policy_set: PolicySet) -> None:
    contact = ("user.name", "user.contact.email", "user.contact.phone_number",
               "user.contact.address.street", "user.contact.address.city")
    for system in policy_set.systems:
        for spec in policy_set[system].walk():
            # array items are replaced with their array, which holds the permission
            if spec.category in contact and not spec.read_only and not spec.path.endswith("[]"):
                assert "customer_service" in spec.purposes, spec.path
                assert "editor" in spec.edit_roles, spec.path


def test_version_ignores_layout_but_not_content(tmp_path: Path) -> None:
    src = (CATALOG / "sedona.yaml").read_text(encoding="utf-8")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "sedona.yaml").write_text("# a comment\n" + src, encoding="utf-8")
    (tmp_path / "b" / "sedona.yaml").write_text(
        src.replace("max_length: 60", "max_length: 61", 1), encoding="utf-8"
    )
    original = load_policy_set([CATALOG / "sedona.yaml"])["sedona"].version
    assert load_policy_set([tmp_path / "a"])["sedona"].version == original
    assert load_policy_set([tmp_path / "b"])["sedona"].version != original


# ---- broken copies: every error names file, line and key -------------------------------

def _broken(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    """A copy of a shipped file with ``old`` replaced by ``new`` (once); returns the path
    and the line where the copy first differs from the original."""
    text = (CATALOG / name).read_text(encoding="utf-8")
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(broken, encoding="utf-8")
    pairs = zip(text.splitlines(), broken.splitlines(), strict=False)
    line = next(i for i, (a, b) in enumerate(pairs, 1) if a != b)
    return path, line


def _errors(path: Path) -> list[str]:
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_set([path])
    return exc.value.errors


BREAKAGES = [
    ("sedona.yaml", "    max_length: 60\n", "    max_length: sixty\n",
     "fields.CustomerName.max_length: expected an integer, got 'sixty'"),
    ("timelog.yaml", "    type: integer\n", "    type: int\n",
     "fields.CustomerID.type: unknown type 'int'"),
    ("billbee.yaml", "    sensitivity: internal        # the surrogate",
     "    sensitivity: secret        # the surrogate",
     "fields.Id.sensitivity: unknown sensitivity"),
    ("keycom.yaml", "    category: user.contact.email\n", "    category: user.contact.emial\n",
     "fields.email.category: unknown data category 'user.contact.emial'"),
    ("billbee.yaml", "personal: partial,", "personal: blur,",
     "masking.editor.personal: unknown masking strategy 'blur' (valid: aesgcm, clear, encrypt, "
     "hash, null, partial, pseudonym, redact)"),
    ("keycom.yaml", "    edit: protection\n", "    edit: protection\n    colour: red\n",
     "fields.restricted_type_id.colour: unknown key"),
    ("timelog.yaml", "mode: put ", "mode: post ", "mode: unknown mode 'post'"),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), BREAKAGES)
def test_broken_copy_names_file_line_and_key(
    tmp_path: Path, name: str, old: str, new: str, expected: str
) -> None:
    path, line = _broken(tmp_path, name, old, new)
    errors = _errors(path)
    wanted = f"{name}:{line} {expected}"
    assert any(e.startswith(wanted) for e in errors), errors


def test_unknown_category_names_the_nearest(tmp_path: Path) -> None:
    path, _ = _broken(tmp_path, "keycom.yaml", "    category: user.contact.email\n",
                      "    category: user.contact.emial\n")
    (error,) = _errors(path)
    assert "nearest: user.contact.email" in error


@pytest.mark.parametrize("name", [p.name for p in SHIPPED])
def test_every_shipped_file_broken_fails_with_file_line(tmp_path: Path, name: str) -> None:
    text = (CATALOG / name).read_text(encoding="utf-8")
    broken = text.replace("sensitivity: personal", "sensitivity: privat")
    path = tmp_path / name
    path.write_text(broken, encoding="utf-8")
    errors = _errors(path)
    lines = broken.splitlines()
    expected_lines = [i + 1 for i, ln in enumerate(lines) if "sensitivity: privat" in ln]
    assert len(errors) >= len(expected_lines) > 0
    for line in expected_lines:
        assert any(e.startswith(f"{name}:{line} ") and "sensitivity" in e for e in errors), line


def test_all_errors_of_all_files_at_once(tmp_path: Path) -> None:
    for src in SHIPPED:
        shutil.copy(src, tmp_path / src.name)
    _broken(tmp_path, "sedona.yaml", "    max_length: 60\n", "    max_length: sixty\n")
    _broken(tmp_path, "keycom.yaml", "mode: patch", "mode: merge")
    errors = _errors(tmp_path)
    assert any(e.startswith("sedona.yaml:") for e in errors)
    assert any(e.startswith("keycom.yaml:") for e in errors)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system: x\nmode: put\n  bad: [\n", "x.yaml:3: YAML syntax error"),
        ("", "x.yaml:1: the file is empty"),
        ("- a\n- b\n", "x.yaml:1: expected a mapping"),
        ("system: x\nsystem: y\n", "x.yaml:2 system: duplicate key"),
    ],
)
def test_malformed_documents(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    errors = _errors(path)
    assert any(e.startswith(expected) for e in errors), errors


def test_missing_keys_unknown_top_key_and_bad_rule(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(
        "system: x\nmode: put\nid_field: nope\nflavour: 1\nfields:\n"
        "  A: {type: string, category: user.name, sensitivity: personal}\n"
        "rules:\n  - name: r\n    when: {B: set}\n    deny: gone\n",
        encoding="utf-8",
    )
    errors = _errors(path)
    for expected in (
        "masking: required key is missing",
        "x.yaml:3 id_field: 'nope' is not a top-level field",
        "x.yaml:4 flavour: unknown key",
        "x.yaml:9 rules[0].when.B: condition on unknown field 'B'",
        "x.yaml:10 rules[0].deny: unknown problem 'gone'",
    ):
        assert any(expected in e for e in errors), (expected, errors)


def test_restricted_field_editable_by_editor_is_refused(tmp_path: Path) -> None:
    path, _ = _broken(tmp_path, "keycom.yaml", "    sensitivity: restricted\n    edit: protection",
                      "    sensitivity: restricted\n    edit: contact")
    errors = _errors(path)
    assert any("personal_id.edit: a restricted field may be changed by privacy_officer only"
               in e for e in errors), errors


def test_masking_that_shows_more_of_higher_sensitivity_is_refused(tmp_path: Path) -> None:
    path, _ = _broken(tmp_path, "billbee.yaml", "personal: partial, restricted: redact",
                      "personal: redact, restricted: partial")
    errors = _errors(path)
    assert any("masking.editor.restricted: shows more than personal" in e for e in errors)


def test_strategy_options_are_typed(tmp_path: Path) -> None:
    path, _ = _broken(tmp_path, "billbee.yaml", "personal: partial,",
                      "personal: {strategy: partial, keep: many},")
    errors = _errors(path)
    assert any("masking.editor.personal.keep: expected an integer, got 'many'" in e
               for e in errors), errors


def test_duplicate_system_across_files(tmp_path: Path) -> None:
    shutil.copy(CATALOG / "keycom.yaml", tmp_path / "keycom.yaml")
    shutil.copy(CATALOG / "keycom.yaml", tmp_path / "keycom2.yaml")
    errors = _errors(tmp_path)
    assert any("keycom2.yaml" in e and "already defined" in e for e in errors)


def test_unknown_system_is_a_key_error(policy_set: PolicySet) -> None:
    with pytest.raises(KeyError):
        policy_set["nosuch"]
