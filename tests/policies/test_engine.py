"""The engine as the gateway uses it: inputs untouched, keys, custom policies, field table."""

from __future__ import annotations

import copy
import gc
import json
import os
from pathlib import Path

import pytest

from policies import (
    MaskingConfigError,
    PolicyEngine,
    PolicyLoadError,
    PolicySet,
    load_policy_set,
)
from policies.loader import CATALOG
from tests.policies.conftest import HASH_SALT, PSEUDONYM_KEY, principal

PRE = {"id": 4001, "restricted_type_id": 1, "name": "Aino Virtanen", "sms_numbers": ["+35840"],
       "email": "aino@example.fi"}

TINY = """
system: tiny
mode: put
id_field: id
edit_profiles:
  contact: {roles: [editor], purposes: [customer_service]}
masking:
  editor: {public: clear, internal: clear, personal: aesgcm, restricted: redact}
fields:
  id: {type: integer, read_only: true, category: user.unique_id, sensitivity: internal}
  name: {type: string, category: user.name, sensitivity: personal, edit: contact}
"""


def test_decide_and_mask_leave_their_inputs_alone(engine: PolicyEngine) -> None:
    pre, patch = copy.deepcopy(PRE), {"name": "Aino Salo", "sms_numbers": ["+35850"]}
    frozen_pre, frozen_patch = copy.deepcopy(pre), copy.deepcopy(patch)
    decision = engine.decide("keycom", pre, patch, principal("editor"), "customer_service")
    assert decision.allowed and decision.changed == ("name", "sms_numbers")
    engine.mask("keycom", pre, ["editor"])
    assert pre == frozen_pre and patch == frozen_patch


def test_merged_is_a_new_object(engine: PolicyEngine) -> None:
    pre = {"Id": 1002, "Name": "Anna", "ArchivedAt": None,
           **{f: None for f in engine.policies["billbee"].writable_fields if f != "Name"}}
    decision = engine.decide("billbee", pre, {"Name": "Anna B."}, principal("editor"),
                             "customer_service")
    assert decision.merged is not None and decision.merged is not pre
    assert decision.merged["Name"] == "Anna B." and pre["Name"] == "Anna"


def test_decision_repr_holds_no_values(engine: PolicyEngine) -> None:
    decision = engine.decide("keycom", PRE, {"name": "Aino Salo"}, principal("editor"),
                             "customer_service")
    text = repr(decision)
    assert "Aino" not in text and "name" in text
    assert "Aino" not in repr(engine.mask("keycom", PRE, ["privacy_officer"]))


def test_a_policy_with_aesgcm_needs_the_encryption_key(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    policies = load_policy_set([tmp_path])
    with pytest.raises(MaskingConfigError, match="encryption key"):
        PolicyEngine(policies, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
    engine = PolicyEngine(policies, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT,
                          encryption_key=os.urandom(32))
    result = engine.mask("tiny", {"id": 1, "name": "Aino"}, ["editor"])
    assert result.record["id"] == 1
    assert result.record["name"].startswith("aesgcm:")
    assert result.counts == {"aesgcm": 1}


def test_field_table_is_json_ready(policy_set: PolicySet) -> None:
    for system in policy_set.systems:
        rows = policy_set[system].field_table()
        json.dumps(rows)
        assert {"path", "type", "constraints", "read_only", "required", "description",
                "category", "sensitivity", "editable_by", "purposes", "masking"} <= set(rows[0])
    row = next(r for r in policy_set["sedona"].field_table() if r["path"] == "CustomerName")
    assert row["constraints"] == {"max_length": 60, "pattern": r".*\S.*"} and row["required"]


def test_needs_pre_image(policy_set: PolicySet) -> None:
    assert all(policy_set[s].needs_pre_image for s in policy_set.systems)


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_set([tmp_path])
    assert exc.value.errors == ["no policy files found"]


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"system: \xff\xfe\n")
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_set([tmp_path])
    assert exc.value.errors[0].startswith("bad.yaml:1: cannot read the file")


def test_shipped_catalog_is_the_default() -> None:
    assert load_policy_set().systems == load_policy_set([CATALOG]).systems


def test_masking_a_record_leaves_no_reference_cycle(engine: PolicyEngine) -> None:
    # a cycle per answer is what the garbage collector must find and free (before: the
    # recursive closure of mask_record, four cells and two functions per record)
    record = {**PRE, "sms_numbers": ["+35840", "+35850"]}  # a list: the nested walk
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(10):
            shown = engine.mask("keycom", record, ["editor"])
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
    assert shown.record["sms_numbers"] != record["sms_numbers"]  # the walk masked them
