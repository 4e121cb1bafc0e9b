"""Masking: each strategy, the registry, the per-role defaults and record-state escalation."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from common import aead
from policies import MaskingConfigError, PolicyEngine, PolicySet
from policies.masking.base import REDACTED, MaskingKeys
from policies.masking.partial import partial_email, partial_phone, partial_text
from policies.masking.registry import STRATEGIES, strategy_names
from tests.policies.conftest import HASH_SALT, PSEUDONYM_KEY

ORDINARY = {
    "id": 4001, "restricted_type_id": 1, "name": "Aino Virtanen", "email": "aino@example.fi",
    "phone": "+358 40 1234567", "personal_id": "010190-123A", "status_id": 1,
    "sms_numbers": ["+358401234567"], "note": None,
}
RESTRICTED = {**ORDINARY, "id": 4002, "restricted_type_id": 2}
KEYS = MaskingKeys(PSEUDONYM_KEY, HASH_SALT, os.urandom(32))


def test_registry_is_explicit_and_named() -> None:
    assert strategy_names() == ["aesgcm", "clear", "encrypt", "hash", "null", "partial",
                                "pseudonym", "redact"]
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name or (name, strategy.name) == ("encrypt", "aesgcm")


def test_partial_shapes() -> None:
    assert partial_email("anna.berg@mail.example.org") == "a***@***.org"
    assert partial_phone("+49 30 1234567") == "***67"
    assert partial_phone("12") == "***"
    # ASCII numbers take a faster way to their digits: the same digits as any other
    for number in ("+49 (30) 123-4567", "tel:0049.30.1234567 ext 89", "a1b2c3d4e5f6", "12345"):
        assert partial_phone(number) == (
            "***" + "".join(c for c in number if c.isdigit())[-2:]
            if sum(c.isdigit() for c in number) >= 6 else "***"
        )
    assert partial_phone("\u0661\u0662\u0663\u0664\u0665\u0666\u0667") == "***\u0666\u0667"
    assert partial_text("Virtanen", 1) == "V***n"
    assert partial_text("Virtanen", 2) == "Vi***en"
    assert partial_text("Al", 1) == "***"


def _mask(strategy: str, value: Any, shape: str = "text", **options: Any) -> Any:
    s = STRATEGIES[strategy]
    opts, errors = s.parse_options(options)
    assert errors == []
    return s.build(opts, KEYS, "keycom")(value, shape, "name")


def test_strategies() -> None:
    assert _mask("clear", "Aino") == "Aino"
    assert _mask("redact", "Aino") == REDACTED
    assert _mask("redact", "Aino", text="***") == "***"
    assert _mask("null", "Aino") is None
    assert _mask("partial", 12345) == REDACTED
    assert _mask("partial", "aino@example.fi", "email") == "a***@***.fi"
    hashed = _mask("hash", "Aino")
    assert hashed.startswith("sha256:") and len(hashed) == 7 + 64
    assert _mask("hash", "Aino") == hashed
    pseudo = _mask("pseudonym", "Aino")
    assert pseudo == _mask("pseudonym", "Aino")  # stable: records can be joined
    assert pseudo != _mask("pseudonym", "Aina")
    assert len(_mask("pseudonym", "Aino", length=16)) == 3 + 16


def test_pseudonym_depends_on_the_key() -> None:
    s = STRATEGIES["pseudonym"]
    opts, _ = s.parse_options({})
    other = MaskingKeys(b"another-key-0123456789", HASH_SALT)
    assert s.build(opts, KEYS, "x")("Aino", "text", "p") != s.build(opts, other, "x")(
        "Aino", "text", "p")


def test_aesgcm_is_reversible_with_the_key_and_bound_to_its_field() -> None:
    sealed = _mask("aesgcm", "Aino")
    blob = base64.urlsafe_b64decode(sealed.removeprefix("aesgcm:"))
    assert KEYS.encryption_key is not None
    assert json.loads(aead.open_sealed(KEYS.encryption_key, blob, b"keycom|name")) == "Aino"
    with pytest.raises(aead.SealError):
        aead.open_sealed(KEYS.encryption_key, blob, b"keycom|email")


def test_keyed_strategies_without_their_key_fail_at_build() -> None:
    with pytest.raises(MaskingConfigError, match="encryption key"):
        STRATEGIES["aesgcm"].build(None, MaskingKeys(PSEUDONYM_KEY, HASH_SALT), "x")
    with pytest.raises(MaskingConfigError, match="16 bytes"):
        STRATEGIES["pseudonym"].build(
            STRATEGIES["pseudonym"].parse_options({})[0], MaskingKeys(b"short", HASH_SALT), "x")


def test_bad_options() -> None:
    _, errors = STRATEGIES["partial"].parse_options({"keep": 9})
    assert errors == [("", "keep: between 1 and 4 characters")]
    _, errors = STRATEGIES["clear"].parse_options({"keep": 1})
    assert errors[0][0] == "keep"


def test_secrets_stay_out_of_repr() -> None:
    assert PSEUDONYM_KEY.decode() not in repr(KEYS)
    assert HASH_SALT.decode() not in repr(KEYS)


def test_editor_defaults(engine: PolicyEngine) -> None:
    result = engine.mask("keycom", ORDINARY, ["editor"])
    r = result.record
    assert r["id"] == 4001 and r["status_id"] == 1  # internal: clear
    assert r["name"] == "A***n"
    assert r["email"] == "a***@***.fi"
    assert r["phone"] == "***67"
    assert r["sms_numbers"] == ["***67"]
    assert r["personal_id"] == REDACTED  # restricted
    assert r["note"] is None
    assert result.counts == {"partial": 4, "redact": 1}


def test_auditor_sees_pseudonyms(engine: PolicyEngine) -> None:
    r = engine.mask("keycom", ORDINARY, ["auditor"]).record
    assert r["name"].startswith("pn:") and r["email"].startswith("pn:")
    assert r["personal_id"] == REDACTED
    again = engine.mask("keycom", {**ORDINARY, "id": 9}, ["auditor"]).record
    assert again["name"] == r["name"]


def test_privacy_officer_sees_everything(engine: PolicyEngine) -> None:
    result = engine.mask("keycom", RESTRICTED, ["privacy_officer"])
    assert result.record == RESTRICTED
    assert result.counts == {}


def test_admin_sees_internal_only(engine: PolicyEngine) -> None:
    r = engine.mask("keycom", ORDINARY, ["admin"]).record
    assert r["status_id"] == 1
    assert r["name"] == REDACTED and r["email"] == REDACTED and r["personal_id"] == REDACTED


def test_restricted_record_masks_escalated(engine: PolicyEngine) -> None:
    r = engine.mask("keycom", RESTRICTED, ["editor"]).record
    assert r["name"] == REDACTED and r["email"] == REDACTED and r["sms_numbers"] == [REDACTED]
    assert r["status_id"] == 1
    assert engine.mask("keycom", RESTRICTED, ["auditor"]).record["name"] == REDACTED


def test_masking_steps_are_kept_per_role_set_and_record_state(policy_set: PolicySet) -> None:
    """The masker keeps each field's step per role set and record state (worked out once,
    not per record): records of both states and callers of different roles, interleaved
    on one engine, each masked exactly as a fresh engine masks it alone."""
    shared = PolicyEngine(policy_set, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
    cases = [
        (record, roles)
        for _ in range(2)
        for record in (ORDINARY, RESTRICTED, {**ORDINARY, "extra": "x"})
        for roles in (["editor"], ["auditor"], ["auditor", "editor"], ["guest"])
    ]
    for record, roles in cases:
        fresh = PolicyEngine(policy_set, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
        assert shared.mask("keycom", record, roles) == fresh.mask("keycom", record, roles)
    ordinary = shared.mask("keycom", ORDINARY, ["editor"])
    restricted = shared.mask("keycom", RESTRICTED, ["editor"])
    assert ordinary.record["name"] == "A***n" and restricted.record["name"] == REDACTED
    assert ordinary.counts != restricted.counts


def test_a_plan_visits_only_the_fields_it_masks(policy_set: PolicySet) -> None:
    """A record's fields shown as they are are copied, not visited one by one (issue 11):
    a plan lists only the fields its steps mask or walk; members the policy does not name
    are still masked as unknown, in the record's order, and the answer keeps that order."""
    engine = PolicyEngine(policy_set, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
    record = {"extra": "x", **ORDINARY, "another": 7, "none_here": None}
    result = engine.mask("keycom", record, ["editor"])
    assert list(result.record) == list(record)
    assert result.record["extra"] == REDACTED and result.record["another"] == REDACTED
    assert result.record["none_here"] is None
    assert result.record["id"] == 4001 and result.record["status_id"] == 1  # shown as is
    masks = engine._masks["keycom"]
    (plan,) = masks.plans.values()
    masked = dict(plan.masked)
    assert "name" in masked and "personal_id" in masked and "sms_numbers" in masked
    assert "id" not in masked and "status_id" not in masked  # shown: not visited
    assert all(step is not None for step in masked.values())


def test_several_roles_get_the_most_revealing(engine: PolicyEngine) -> None:
    r = engine.mask("keycom", ORDINARY, ["auditor", "editor"]).record
    assert r["name"] == "A***n"


def test_unknown_role_and_unknown_field_are_denied_by_default(engine: PolicyEngine) -> None:
    r = engine.mask("keycom", {**ORDINARY, "extra": "x"}, ["guest"]).record
    assert r["name"] == REDACTED and r["status_id"] == REDACTED
    assert engine.mask("keycom", {"extra": "x"}, ["editor"]).record == {"extra": REDACTED}


def test_nested_and_array_masking(engine: PolicyEngine) -> None:
    record = {
        "Id": 1002, "Name": "Anna Berg",
        "DefaultMailAddress": {"Id": 11, "TypeName": "EMail", "Value": "anna@example.org"},
        "MetaData": [{"TypeId": 2, "Value": "+49 30 1234567"}],
    }
    r = engine.mask("billbee", record, ["editor"]).record
    assert r["DefaultMailAddress"] == {"Id": 11, "TypeName": "EMail", "Value": "a***@***.org"}
    assert r["MetaData"][0]["TypeId"] == 2
    assert r["MetaData"][0]["Value"] != "+49 30 1234567"


def test_mask_does_not_touch_the_input(engine: PolicyEngine) -> None:
    record = json.loads(json.dumps(ORDINARY))
    engine.mask("keycom", record, ["editor"])
    assert record == ORDINARY


def test_sensitivity(engine: PolicyEngine) -> None:
    assert engine.sensitivity("keycom", "email") == "personal"
    assert engine.sensitivity("keycom", "email", RESTRICTED) == "restricted"
    assert engine.sensitivity("keycom", "email", ORDINARY) == "personal"
    assert engine.sensitivity("keycom", "status_id", RESTRICTED) == "internal"
    assert engine.sensitivity("billbee", "MetaData[3].Value") == "personal"
    assert engine.sensitivity("billbee", "DefaultMailAddress.Id") == "internal"
    assert engine.sensitivity("billbee", "Nope") == "restricted"


def test_engine_needs_the_aes_key_only_when_a_policy_uses_it(policy_set: PolicySet) -> None:
    PolicyEngine(policy_set, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
    with pytest.raises(MaskingConfigError):
        PolicyEngine(policy_set, pseudonym_key=b"short", hash_salt=HASH_SALT)
