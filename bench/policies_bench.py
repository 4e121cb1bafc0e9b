"""Micro-benchmark of the policy engine: validate(), decide() and mask() on a 10-field patch.

    python -m bench.policies_bench [--number 5000] [--repeat 15]

Prints the best per-call time (µs) of each, for timelog (whole-object PUT: the decision
also merges a 35-field record) and keycom (native patch with a record-state rule).
The target is <= 20 µs per decision; see docs/performance.md. Not a test assertion.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from common.vocabulary import Role
from policies import PolicyEngine, Principal, load_policy_set

TIMELOG_PRE: dict[str, Any] = {
    "CustomerID": 100001, "Name": "Nordlicht ApS", "CustomerNo": "C-100001",
    "CustomerStatusID": 1, "VatNo": "DK12345678", "OrganizationNo": "12345678",
    "Address": "Havnegade 1", "Address2": "", "Address3": "", "City": "København",
    "CountryID": 45, "CreditorID": "", "CurrencyID": 1, "CustomerSince": "2020-01-01",
    "Email": "info@nordlicht.example", "Fax": "", "IndustryID": 2, "InvoicingAddress": "",
    "InvoicingAddress2": "", "InvoicingAddress3": "", "InvoicingAddressCity": "",
    "InvoicingAddressCountryID": 45, "InvoicingAddressState": "", "InvoicingAddressZipCode": "",
    "InvoicingName": "", "NickName": "", "Phone": "+45 12 34 56 78", "PrimaryKAMID": 7,
    "SecondaryKAMID": 8, "State": "", "UseInvoicingAddress": False, "Website": "",
    "ZipCode": "1000", "ID": "8f0c2a52-4c1e-4f57-9d0b-0c3f2d7c1a11", "DefaultMileageDistance": 0,
}
TIMELOG_PATCH: dict[str, Any] = {
    "Name": "Nordlicht A/S", "Email": "kontakt@nordlicht.example", "Phone": "+45 87 65 43 21",
    "Address": "Havnegade 2", "Address2": "2. sal", "City": "Aarhus", "ZipCode": "8000",
    "CountryID": 45, "NickName": "Nordlicht", "Website": None,
}
KEYCOM_PRE: dict[str, Any] = {
    "id": 100001, "restricted_type_id": 1, "name": "Aino Virtanen", "email": "aino@example.fi",
    "phone": "+358 40 1234567", "phone2": None, "name_extension": "", "invoice_name": "",
    "country": "FI", "invoicing_country": "FI", "note": "", "sms_numbers": ["+358401234567"],
    "language_id": 1, "status_id": 1, "personal_id": "010190-123A", "sms_disabled": False,
}
KEYCOM_PATCH: dict[str, Any] = {
    "name": "Aino Salo", "email": "aino.salo@example.fi", "phone": "+358 40 7654321",
    "phone2": "+358 50 1112222", "name_extension": "Jr", "invoice_name": "Aino Salo",
    "country": "FI", "note": "moved", "sms_numbers": ["+358407654321"], "language_id": 2,
}


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best per-call CPU time of this process (process_time: other load on a shared machine
    does not count, unlike wall-clock time)."""
    timings = timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)
    return min(timings) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policies_bench")
    parser.add_argument("--number", type=int, default=5000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=15, help="timings; the best is kept")
    args = parser.parse_args(argv)
    engine = PolicyEngine(
        load_policy_set(), pseudonym_key=b"bench-pseudonym-key-0123456789", hash_salt=b"salt"
    )
    editor = Principal("bench", frozenset({Role.EDITOR}), frozenset({"*"}))
    cases = (("timelog", TIMELOG_PRE, TIMELOG_PATCH), ("keycom", KEYCOM_PRE, KEYCOM_PATCH))
    print(f"policy engine, best of {args.repeat} x {args.number} calls, CPU µs per call")
    for system, pre, patch in cases:
        assert len(patch) == 10
        assert engine.validate(system, patch) == [], system
        decision = engine.decide(system, pre, patch, editor, "customer_service")
        assert decision.allowed, decision.problem
        timings = {
            "validate": best_us(partial(engine.validate, system, patch),
                                args.number, args.repeat),
            "decide": best_us(partial(engine.decide, system, pre, patch, editor,
                                      "customer_service"), args.number, args.repeat),
            "mask(editor)": best_us(partial(engine.mask, system, pre, ["editor"]),
                                    args.number // 4 or 1, args.repeat),
        }
        row = "  ".join(f"{name} {us:6.1f}" for name, us in timings.items())
        print(f"{system:8s} 10-field patch: {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
