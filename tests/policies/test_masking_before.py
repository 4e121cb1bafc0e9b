"""The masker with each field's strategy bound once per plan (issue 11, branch
``i11-pol``) answers exactly as the masker before it (tests/policies/masker_before.py):
many generated records - the emulators' customers of the four systems, then the same
with fields nulled, dropped, of another type, restricted or archived, with members the
policy does not name at the top and nested - under every role set, with the shipped
policies and with policies whose tables use every strategy (options included)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common import aead
from policies import PolicyEngine, load_policy_set
from policies.compile import compile_policy
from policies.compiled import CompiledPolicy
from policies.loader import CATALOG
from policies.masker import build_masks, mask_record
from policies.masking.base import MaskingKeys
from policies.masking.partial import Partial
from policies.masking.redact import Redact
from policies.model import SENSITIVITIES
from policies.yamlmarks import load_marked
from service.emulators import billbee, keycom, sedona, timelog
from tests.policies import masker_before
from tests.policies.conftest import HASH_SALT, PSEUDONYM_KEY

KEYS = MaskingKeys(PSEUDONYM_KEY, HASH_SALT, bytes(range(32)))
GENERATORS: dict[str, Callable[[int], dict[str, Any]]] = {
    "keycom": keycom.generate, "billbee": billbee.generate,
    "timelog": timelog.generate, "sedona": sedona.generate,
}  # fmt: skip
ROLES = ("editor", "auditor", "privacy_officer", "admin", "guest")
ROLE_SETS = [
    frozenset(c) for n in range(len(ROLES) + 1) for c in itertools.combinations(ROLES, n)
]
#: every strategy, with options, in tables that differ per role
CELLS: list[Any] = [
    "clear", "redact", {"strategy": "redact", "text": "***"}, "null", "partial",
    {"strategy": "partial", "keep": 2}, "hash", "pseudonym",
    {"strategy": "pseudonym", "length": 16}, "aesgcm",
]  # fmt: skip
ODD_VALUES: list[Any] = [
    None, "", "x", "***", "[redacted]", "a@b", "@", "+49 30 1234567", "12", 7, 0, 2.5, True,
    [], ["+358 40 1234567", None, 3], {}, {"Value": "a@b.example", "extra": "x"}, "ÄÖü ✓",
]  # fmt: skip


def _document(system: str) -> dict[str, Any]:
    doc = load_marked((CATALOG / f"{system}.yaml").read_text(encoding="utf-8"))
    assert doc.data is not None and not doc.errors
    return dict(doc.data)


#: a policy of shapes the catalog does not have: a list declared more sensitive than its
#: items (the list masked whole where its items would be shown), lists in objects, a
#: rule that raises two levels
HANDMADE: dict[str, Any] = {
    "system": "handmade", "mode": "patch", "id_field": "id",
    "masking": {"editor": {"public": "clear", "internal": "clear", "personal": "partial",
                           "restricted": "redact"},
                # a table the loader refuses (restricted shows more than personal), so
                # that a member the policy does not name is shown as it is
                "admin": {"public": "clear", "internal": "redact", "personal": "partial",
                          "restricted": "clear"}},
    "rules": [{"name": "flagged", "when": {"flag": {"equals": True}},
               "escalate": {"personal": "restricted", "internal": "personal"},
               "edit_roles": ["privacy_officer"], "problem": "record_restricted"}],
    "fields": {
        "id": {"type": "integer", "sensitivity": "internal"},
        "flag": {"type": "boolean", "sensitivity": "public"},
        "tags": {"type": "array", "sensitivity": "personal", "items": {
            "type": "object", "fields": {"k": {"type": "string", "sensitivity": "public"},
                                         "v": {"type": "string", "sensitivity": "public"}}}},
        "plain": {"type": "array", "sensitivity": "restricted",
                  "items": {"type": "string", "sensitivity": "public"}},
        "contact": {"type": "object", "fields": {
            "email": {"type": "string", "format": "email", "sensitivity": "personal"},
            "phones": {"type": "array", "items": {"type": "string", "format": "phone",
                                                  "sensitivity": "personal"}},
            "note": {"type": "string", "sensitivity": "internal"}}},
    },
}  # fmt: skip


def _handmade(customer_id: int) -> dict[str, Any]:
    rng = random.Random(customer_id)
    pick = rng.choice
    return {
        "id": customer_id, "flag": pick((True, False, None, 1)),
        "tags": [{"k": pick(ODD_VALUES), "v": pick(ODD_VALUES)}, pick(ODD_VALUES)],
        "plain": pick((["ab", "cd"], "x", None, [None, 3])),
        "contact": {"email": pick(ODD_VALUES), "phones": [pick(ODD_VALUES), "+49 30 1234"],
                    "note": pick(ODD_VALUES), "other": pick(ODD_VALUES)},
    }  # fmt: skip


GENERATORS["handmade"] = _handmade


def _policies() -> Iterator[CompiledPolicy]:
    rng = random.Random(11)
    for system in GENERATORS:
        data = HANDMADE if system == "handmade" else _document(system)
        yield compile_policy(data)
        for _ in range(3):  # the same fields, other masking tables
            masking = {
                role: {sens: rng.choice(CELLS) for sens in SENSITIVITIES}
                for role in ("editor", "auditor", "privacy_officer", "admin")
            }
            yield compile_policy({**data, "masking": masking})


def _records(policy: CompiledPolicy, rng: random.Random) -> Iterator[dict[str, Any]]:
    generate = GENERATORS[policy.system]
    names = list(policy.fields)
    for n in range(40):
        record = generate(100000 + rng.randrange(10000))
        yield record
        odd = dict(record)
        for name in rng.sample(names, k=min(len(names), 1 + n % 6)):
            if rng.random() < 0.2:
                odd.pop(name, None)
            else:
                odd[name] = rng.choice(ODD_VALUES)
        for key in [k for k, v in odd.items() if isinstance(v, dict)]:  # nested unknowns
            odd[key] = {**odd[key], "NotInPolicy": rng.choice(ODD_VALUES)}
        if rng.random() < 0.5:
            odd["not_in_policy"] = rng.choice(ODD_VALUES)
        if policy.system == "keycom":
            odd["restricted_type_id"] = rng.choice((1, 2, 2.0, "2", None))
        if policy.system == "billbee" and rng.random() < 0.5:
            odd["ArchivedAt"] = "2026-01-01T00:00:00"
            odd["MetaData"] = [
                {"TypeId": 2, "Value": rng.choice(ODD_VALUES)}, rng.choice(ODD_VALUES)
            ]
        yield odd


def _fake_seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """A deterministic stand-in for AES-GCM (its nonce is random): what would be sealed,
    and under which associated data - what the two maskers must agree on."""
    return b"|".join((key, plaintext, associated))


def test_masking_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aead, "seal", _fake_seal)
    rng = random.Random(2026)
    compared = 0
    for policy in _policies():
        new_masks = build_masks(policy, KEYS)
        old_masks = masker_before.build_masks(policy, KEYS)
        for record in _records(policy, rng):
            for roles in ROLE_SETS:
                new = mask_record(policy, new_masks, record, roles)
                old = masker_before.mask_record(policy, old_masks, record, roles)
                # equal values, the same types, the same order of members (compared
                # before the assert: a failure names the case, never a value)
                same = repr(new.record) == repr(old.record)
                assert same, (policy.system, sorted(roles))
                same_counts = dict(new.counts) == dict(old.counts)
                assert same_counts, (policy.system, sorted(roles))
                compared += 1
    assert compared == 5 * 4 * 80 * len(ROLE_SETS)


def test_an_answer_is_masked_by_maskers_bound_once_per_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a plan is built, masking an answer neither binds a masker again nor calls a
    strategy with a shape and a path: only the callables bound to each field run."""
    engine = PolicyEngine(load_policy_set(), pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
    records = [keycom.generate(100001 + i) for i in range(20)]
    first = [engine.mask("keycom", r, ["editor"]) for r in records]

    def refused(*args: Any) -> Any:
        raise AssertionError("a masker bound or called per answer")

    for cls in (Partial, Redact):
        monkeypatch.setattr(cls, "bind", refused)
        monkeypatch.setattr(cls, "__call__", refused)
    assert [engine.mask("keycom", r, ["editor"]) for r in records] == first
