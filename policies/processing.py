"""What a policy says about its processing activity, for the record of processing (GDPR
Art. 30(1)) and for the retention of sealed values in the audit log.

The ``processing`` section of a policy file (docs/policies.md, "Processing") names the
controller, the processor (the upstream's vendor), the data subjects, what each purpose
means, the recipients, the transfers to third countries, how long the upstream keeps the
record, and how long the audit log may keep the sealed values of each data category.
:mod:`policies.processing_schema` checks it; :func:`compile_processing` turns it into the
frozen :class:`Processing` the record (:mod:`policies.record`) and the gateway read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


class RecipientKind(StrEnum):
    """Who receives the data (Art. 30(1)(d))."""

    PROCESSOR = "processor"
    INTERNAL = "internal"
    THIRD_PARTY = "third_party"
    AUTHORITY = "authority"


class Safeguard(StrEnum):
    """The legal ground of a transfer to a third country (Art. 30(1)(e), Art. 45-49)."""

    ADEQUACY_DECISION = "adequacy_decision"
    STANDARD_CONTRACTUAL_CLAUSES = "standard_contractual_clauses"
    BINDING_CORPORATE_RULES = "binding_corporate_rules"
    DEROGATION = "derogation"


#: the European Economic Area (EU 27, Iceland, Liechtenstein, Norway): a recipient here
#: is no transfer to a third country
EEA: Final = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        "IS", "LI", "NO",
    }
)  # fmt: skip
#: the longest retention a policy may state (100 years); the shortest is one day
MAX_RETENTION_DAYS: Final = 36500


@dataclass(frozen=True, slots=True)
class Party:
    """A controller, its representative, or its data protection officer."""

    name: str
    contact: str
    address: str = ""


@dataclass(frozen=True, slots=True)
class Processor:
    """The vendor that runs the upstream system for the controller (Art. 28)."""

    name: str
    country: str
    contract: str = ""


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    kind: RecipientKind
    country: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    country: str
    recipient: str
    safeguard: Safeguard
    note: str = ""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the audit log may keep sealed values, in days, by data category: the
    most specific category listed wins (``user.contact`` covers ``user.contact.email``
    unless that is listed too), else ``default_days``."""

    default_days: int
    categories: Mapping[str, int] = field(default_factory=dict)

    def days_for(self, category: str | None) -> int:
        probe = category or ""
        while probe:
            if probe in self.categories:
                return self.categories[probe]
            probe = probe.rpartition(".")[0]
        return self.default_days


@dataclass(frozen=True, slots=True)
class Processing:
    """One system's processing activity, as its policy file states it."""

    activity: str
    controller: Party
    data_subjects: tuple[str, ...]
    purposes: Mapping[str, str]
    recipients: tuple[Recipient, ...]
    transfers: tuple[Transfer, ...]
    upstream_retention: str
    retention: Retention
    processor: Processor | None = None
    representative: Party | None = None
    dpo: Party | None = None
    measures: tuple[str, ...] = ()


def _party(data: Mapping[str, Any] | None) -> Party | None:
    if data is None:
        return None
    return Party(data["name"], data["contact"], data.get("address", ""))


def compile_processing(data: Mapping[str, Any]) -> Processing:
    """A ``processing`` section that :func:`policies.processing_schema.check_processing`
    accepted."""
    retention = data["retention"]
    processor = data.get("processor")
    controller = _party(data["controller"])
    assert controller is not None  # required by the schema
    return Processing(
        activity=data["activity"],
        controller=controller,
        representative=_party(data.get("representative")),
        dpo=_party(data.get("dpo")),
        processor=(
            Processor(processor["name"], processor["country"], processor.get("contract", ""))
            if processor is not None
            else None
        ),
        data_subjects=tuple(data["data_subjects"]),
        purposes=dict(data["purposes"]),
        recipients=tuple(
            Recipient(r["name"], RecipientKind(r["kind"]), r.get("country", ""))
            for r in data["recipients"]
        ),
        transfers=tuple(
            Transfer(t["country"], t["recipient"], Safeguard(t["safeguard"]), t.get("note", ""))
            for t in data["transfers"]
        ),
        upstream_retention=data["upstream_retention"],
        retention=Retention(
            retention["default"], dict(retention.get("categories") or {})
        ),
        measures=tuple(data.get("measures", ())),
    )
