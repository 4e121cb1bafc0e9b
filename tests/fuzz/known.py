"""What the fuzzers found that is not fixed yet: each entry is one strict xfail.

A *gap* is a value a shipped policy accepts and the (emulated) upstream refuses: the
gateway forwards it and answers ``502 upstream_error`` (``upstream_rejected``), a 5xx
for input a client sent. The policies are the place to close a gap (a ``min_length``,
a ``max_length``, ``required``, an ``enum``), or the validator where it is laxer than
docs/policies.md. Until then the patch generator keeps clear of each gap, and
``test_known_gap_is_not_a_server_error[...]`` reproduces it; once fixed, that test
passes, strict xfail turns it red, and the entry is removed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _not_blank(value: Any) -> bool:
    return not isinstance(value, str) or value.strip() != ""


def _at_most(n: int) -> Callable[[Any], bool]:
    return lambda value: not isinstance(value, str) or len(value) <= n


def _no_empty_item(value: Any) -> bool:
    return not isinstance(value, list) or all(item != "" for item in value)


def _calendar_date(value: Any) -> bool:
    return not isinstance(value, str) or "W" not in value


def _sedona_group(value: Any) -> bool:
    return not isinstance(value, str) or value in ("", "RES", "COM", "GOV", "VIP")


@dataclass(frozen=True)
class Gap:
    """``path`` (as in the policy's field table) of ``system``: the upstream refuses
    ``example``, which the policy accepts. ``accepts`` tells the values the upstream
    takes (the generator draws only those); ``null`` whether it takes null."""

    finding: str
    system: str
    path: str
    refused: str
    example: Any
    accepts: Callable[[Any], bool]
    null: bool = True


F1 = "F1 policy looser than the upstream (502 for client input)"
F2 = "F2 type date accepts ISO week dates (docs/policies.md: YYYY-MM-DD)"

GAPS: tuple[Gap, ...] = (
    Gap(F1, "timelog", "Name", "blank or null", "  ", _not_blank, null=False),
    *(Gap(F1, "sedona", name, "blank", " ", _not_blank)
      for name in ("CustomerName", "TypeCode", "TermCode")),
    *(Gap(F1, "sedona", name, "not a customer group", "XYZ", _sedona_group)
      for name in ("GroupCode", "Group2Code")),
    Gap(F1, "keycom", "name", "blank or null", "", _not_blank, null=False),
    *(Gap(F1, "keycom", name, "null", None, lambda v: True, null=False)
      for name in ("cooperative_member", "editable_by_customer", "sms_disabled",
                   "restricted_type_id", "sms_numbers")),
    Gap(F1, "keycom", "sms_numbers", "an empty item", [""], _no_empty_item, null=False),
    *(Gap(F1, "keycom", name, f"longer than {n}", "x" * (n + 1), _at_most(n))
      for name, n in (("country", 64), ("identification", 64), ("invoicing_country", 64),
                      ("number", 32), ("personal_id", 32), ("name", 255),
                      ("name_extension", 255), ("invoice_name", 255), ("note", 4000))),
    *(Gap(F2, "keycom", name, "an ISO week date", "2024-W01-1", _calendar_date)
      for name in ("cooperative_date", "cooperative_reimbursement_date")),
)


def gaps_of(system: str) -> Mapping[str, list[Gap]]:
    out: dict[str, list[Gap]] = {}
    for gap in GAPS:
        if gap.system == system:
            out.setdefault(gap.path, []).append(gap)
    return out


def upstream_takes(gaps: list[Gap], value: Any) -> bool:
    if value is None:
        return all(g.null for g in gaps)
    return all(g.accepts(value) for g in gaps)
