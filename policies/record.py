"""The record of processing activities (GDPR Art. 30(1)), generated from the policies.

One activity per system: what its policy says about the processing (controller,
processor, data subjects, purposes, recipients, transfers, how long the upstream keeps
the record: the ``processing`` section, :mod:`policies.processing`) and what the policy
*does* (which personal data of which categories the system holds, for which purposes it
may be changed and by whom, who sees it in clear, how every role sees it masked, how the
audit log protects it and for how long it keeps it). Every activity names the policy
version it was made from, and the record lists them all: the record and the decisions
in the audit log point at the same versions.

The record is a plain JSON-ready mapping, deterministic for a given policy set (no time
of generation in it), so a golden test can pin the shipped catalog's record.
:mod:`policies.record_render` writes it as Markdown or CSV.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath
from typing import Any, Final

from common.vocabulary import Role
from policies.compiled import CompiledPolicy, FieldSpec
from policies.loader import PolicySet
from policies.masking.registry import STRATEGIES
from policies.processing import Party, Processing
from policies.taxonomy import DATA_CATEGORIES

TITLE: Final = "Record of processing activities (GDPR Art. 30(1))"
#: the sensitivities whose values are personal data (sealed in the audit log)
PERSONAL: Final = ("personal", "restricted")
#: what every activity's data gets from the gateway itself (Art. 30(1)(g), Art. 32)
GATEWAY_MEASURES: Final = (
    "every change passes the gateway: the caller's role, system scope and stated purpose "
    "are checked and every field is validated against this policy before anything is sent",
    "every answer masks each value for the caller's roles (see masking)",
    "personal and restricted values are sealed in the audit log with AES-256-GCM under a "
    "key per data subject, wrapped by a master key kept apart from the data",
    "the audit log is hash-chained and its head signed (Ed25519 checkpoints): any change, "
    "removal or reordering of an entry is found by verification",
    "erasure (Art. 17) and the end of a retention period destroy the subject's keys: the "
    "values can never be read again, the chain still verifies",
    "sealed values are revealed only to a privacy officer who gives a reason; the reveal "
    "is itself an audit entry",
)
#: what a policy without a ``processing`` section leaves out of its activity
UNSTATED: Final = (
    "activity", "controller", "data subjects", "purposes described", "recipients",
    "transfers", "upstream retention", "audit log retention",
)  # fmt: skip


def build_record(policies: PolicySet) -> dict[str, Any]:
    """The record of every system of ``policies``, in system order."""
    return {
        "title": TITLE,
        "policies": [
            {
                "system": name,
                "version": policies[name].version,
                "file": PurePath(policies[name].source).name,
            }
            for name in policies.systems
        ],
        "activities": [activity(policies[name]) for name in policies.systems],
    }


def activity(policy: CompiledPolicy) -> dict[str, Any]:
    """One system's processing activity."""
    proc = policy.processing
    data = _data_rows(policy)
    return {
        "system": policy.system,
        "title": policy.title,
        "policy_version": policy.version,
        "stated": proc is not None,
        "gaps": [] if proc is not None else list(UNSTATED),
        "activity": proc.activity if proc else None,
        "controller": _party(proc.controller) if proc else None,
        "representative": _party(proc.representative) if proc else None,
        "dpo": _party(proc.dpo) if proc else None,
        "processor": _processor(proc),
        "data_subjects": list(proc.data_subjects) if proc else [],
        "purposes": _purposes(policy, proc, data),
        "data": data,
        "rules": _rules(policy),
        "recipients": [
            {"name": r.name, "kind": r.kind.value, "country": r.country or None}
            for r in (proc.recipients if proc else ())
        ],
        "transfers": [
            {
                "country": t.country,
                "recipient": t.recipient,
                "safeguard": t.safeguard.value,
                "note": t.note or None,
            }
            for t in (proc.transfers if proc else ())
        ],
        "storage": _storage(policy, proc),
        "security": [*GATEWAY_MEASURES, *(proc.measures if proc else ())],
    }


def _processor(proc: Processing | None) -> dict[str, Any] | None:
    if proc is None or proc.processor is None:
        return None
    p = proc.processor
    return {"name": p.name, "country": p.country, "contract": p.contract or None}


def _party(party: Party | None) -> dict[str, Any] | None:
    if party is None:
        return None
    return {"name": party.name, "address": party.address or None, "contact": party.contact}


def _held(policy: CompiledPolicy) -> Iterable[FieldSpec]:
    """The fields that carry a value of their own (not an object, not an array's item
    when the array itself is classified)."""
    for spec in policy.walk():
        if spec.category is not None and spec.children is None and not spec.path.endswith("[]"):
            yield spec


def _masking(policy: CompiledPolicy, sensitivity: str) -> dict[str, str]:
    return {role.value: policy.mask_strategy(role, sensitivity) for role in Role}


def _in_clear(masking: dict[str, str]) -> list[str]:
    """The roles that see the value itself (a strategy that discloses everything)."""
    top = STRATEGIES["clear"].disclosure
    return [role for role, name in masking.items() if STRATEGIES[name].disclosure >= top]


def _data_rows(policy: CompiledPolicy) -> list[dict[str, Any]]:
    """One row per (data category, sensitivity) of personal data the system holds."""
    groups: dict[tuple[str, str], list[FieldSpec]] = {}
    for spec in _held(policy):
        if spec.sensitivity in PERSONAL:
            assert spec.category is not None
            groups.setdefault((spec.category, spec.sensitivity), []).append(spec)
    retention = policy.processing.retention if policy.processing else None
    rows = []
    for (category, sensitivity), specs in sorted(groups.items()):
        masking = _masking(policy, sensitivity)
        row: dict[str, Any] = {
            "category": category,
            "category_name": DATA_CATEGORIES.get(category, category),
            "sensitivity": sensitivity,
            "fields": [s.path for s in specs],
            "purposes": sorted({p for s in specs for p in s.purposes}),
            "editable_by": sorted({r for s in specs for r in s.edit_roles}),
            "in_clear_for": _in_clear(masking),
            "masking": masking,
            "audit_log": {
                "sealed": True,
                "retention_days": retention.days_for(category) if retention else None,
            },
            "raised": _raised(policy, sensitivity),
        }
        rows.append(row)
    return rows


def _raised(policy: CompiledPolicy, sensitivity: str) -> list[dict[str, Any]]:
    """What a record-state rule makes of this sensitivity while it holds."""
    out = []
    for rule in policy.escalate_rules:
        target = rule.escalate.get(sensitivity)
        if target is None:
            continue
        masking = _masking(policy, target)
        out.append({
            "rule": rule.name,
            "sensitivity": target,
            "editable_by": sorted(rule.edit_roles),
            "in_clear_for": _in_clear(masking),
            "masking": masking,
        })  # fmt: skip
    return out


def _purposes(
    policy: CompiledPolicy, proc: Processing | None, data: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    used = sorted({p for spec in policy.walk() for p in spec.purposes})
    described = proc.purposes if proc else {}
    return [
        {
            "purpose": purpose,
            "description": described.get(purpose),
            "categories": sorted({row["category"] for row in data if purpose in row["purposes"]}),
        }
        for purpose in sorted({*used, *described})
    ]


def _rules(policy: CompiledPolicy) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"name": r.name, "effect": f"denies every change ({r.problem.value})"}
        for r in policy.deny_rules
    ]
    for esc in policy.escalate_rules:
        raised = ", ".join(f"{a} to {b}" for a, b in sorted(esc.escalate.items()))
        rules.append({
            "name": esc.name,
            "effect": f"raises {raised}; then only {', '.join(sorted(esc.edit_roles))} may "
                      f"change those fields ({esc.problem.value})",
        })  # fmt: skip
    return rules


def _storage(policy: CompiledPolicy, proc: Processing | None) -> dict[str, Any]:
    retention = proc.retention if proc else None
    processor = proc.processor if proc else None
    where = f"{processor.name} ({processor.country})" if processor else policy.title
    return {
        "upstream": {
            "where": where,
            "retention": proc.upstream_retention if proc else None,
        },
        "audit_log": {
            "where": "the gateway's audit log (SQLite or PostgreSQL of the deployment)",
            "sealed": "personal and restricted values, each entry's under its subject's key",
            "clear": "who, when, why, which fields, the outcome, and non-personal values",
            "retention_days": (
                {"default": retention.default_days, "categories": dict(retention.categories)}
                if retention is not None
                else None
            ),
            "after_retention": (
                "the keys of the values whose retention ended are destroyed: the values read "
                "'erased' (reason retention); the entries and the chain stay"
            ),
        },
    }
