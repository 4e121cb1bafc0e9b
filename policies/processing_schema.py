"""The schema of a policy's ``processing`` section (docs/policies.md, "Processing"),
checked like the rest of the file: every error names its key, the loader adds file and
line. The section is optional - a policy without it still decides and masks - but when
present every part the record of processing needs is required.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from common.vocabulary import Purpose
from policies.checker import Checker, show
from policies.processing import EEA, MAX_RETENTION_DAYS, RecipientKind, Safeguard
from policies.yamlmarks import Key

KEYS: Final = {"activity", "controller", "representative", "dpo", "processor",
               "data_subjects", "purposes", "recipients", "transfers", "upstream_retention",
               "retention", "measures"}  # fmt: skip
REQUIRED: Final = ("activity", "controller", "data_subjects", "purposes", "recipients",
                   "transfers", "upstream_retention", "retention")  # fmt: skip
PARTY_KEYS: Final = {"name", "contact", "address"}
PROCESSOR_KEYS: Final = {"name", "country", "contract"}
RECIPIENT_KEYS: Final = {"name", "kind", "country"}
TRANSFER_KEYS: Final = {"country", "recipient", "safeguard", "note"}
RETENTION_KEYS: Final = {"default", "categories"}
_COUNTRY: Final = re.compile(r"[A-Z]{2}")
_ROOT: Final[Key] = ("processing",)


def check_processing(
    c: Checker, data: Any, fields: Mapping[str, Any], profiles: Mapping[str, Any]
) -> None:
    """Check ``processing``; ``fields`` and ``profiles`` are the file's own (the purposes
    the fields may be changed for must each be described)."""
    if not c.mapping(_ROOT, data):
        return
    c.keys(_ROOT, data, KEYS)
    for name in REQUIRED:
        if name not in data:
            c.err((*_ROOT, name), "required key is missing")
    for name in ("activity", "upstream_retention"):
        if name in data:
            c.string((*_ROOT, name), data[name])
    _party(c, (*_ROOT, "controller"), data.get("controller"), required=("name", "contact"))
    _party(c, (*_ROOT, "representative"), data.get("representative"), required=("name",
                                                                               "contact"))
    _party(c, (*_ROOT, "dpo"), data.get("dpo"), required=("contact",))
    _processor(c, data.get("processor"))
    if "data_subjects" in data:
        _strings(c, (*_ROOT, "data_subjects"), data["data_subjects"], empty=False)
    if "measures" in data:
        _strings(c, (*_ROOT, "measures"), data["measures"], empty=True)
    if "purposes" in data:
        _purposes(c, data["purposes"], set(_edit_purposes(fields, profiles)))
    if "recipients" in data:
        _recipients(c, data["recipients"])
    if "transfers" in data:
        _transfers(c, data["transfers"])
    if "retention" in data:
        _retention(c, data["retention"])


def _strings(c: Checker, key: Key, value: Any, *, empty: bool) -> None:
    if not isinstance(value, list) or (not value and not empty):
        what = "a list" if empty else "a non-empty list"
        c.err(key, f"expected {what} of texts, got {show(value)}")
        return
    for i, item in enumerate(value):
        c.string((*key, i), item)


def _party(c: Checker, key: Key, value: Any, *, required: tuple[str, ...]) -> None:
    if value is None or not c.mapping(key, value):
        return
    c.keys(key, value, PARTY_KEYS)
    for name in sorted(PARTY_KEYS):
        if name in value:
            c.string((*key, name), value[name])
        elif name in required:
            c.err((*key, name), "required key is missing")


def _country(c: Checker, key: Key, value: Any) -> bool:
    if not isinstance(value, str) or _COUNTRY.fullmatch(value) is None:
        c.err(key, f"expected an ISO 3166 alpha-2 country code (upper case), got {show(value)}")
        return False
    return True


def _processor(c: Checker, value: Any) -> None:
    key = (*_ROOT, "processor")
    if value is None or not c.mapping(key, value):
        return
    c.keys(key, value, PROCESSOR_KEYS)
    for name in ("name", "country"):
        if name not in value:
            c.err((*key, name), "required key is missing")
    if "name" in value:
        c.string((*key, "name"), value["name"])
    if "country" in value:
        _country(c, (*key, "country"), value["country"])
    if "contract" in value:
        c.string((*key, "contract"), value["contract"])


def _edit_purposes(fields: Mapping[str, Any], profiles: Mapping[str, Any]) -> Iterator[str]:
    """Every purpose a field of the file may be changed for."""
    for spec in _walk(fields):
        edit = spec.get("edit")
        if isinstance(edit, str):
            edit = profiles.get(edit)
        if isinstance(edit, dict) and not spec.get("read_only"):
            purposes = edit.get("purposes")
            if isinstance(purposes, list):
                yield from (p for p in purposes if isinstance(p, str))


def _walk(fields: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(fields, dict):
        return
    for spec in fields.values():
        if isinstance(spec, dict):
            yield spec
            yield from _walk(spec.get("fields"))
            if isinstance(spec.get("items"), dict):
                yield spec["items"]
                yield from _walk(spec["items"].get("fields"))


def _purposes(c: Checker, value: Any, used: set[str]) -> None:
    key = (*_ROOT, "purposes")
    if not c.mapping(key, value):
        return
    valid = tuple(Purpose)
    for name, text in value.items():
        if c.choice((*key, name), name, valid, "purpose"):
            c.string((*key, name), text)
            if name not in used:
                c.err((*key, name), "no field of this policy may be changed for this purpose")
    missing = sorted(used - set(value))
    if missing:
        c.err(key, f"describe every purpose a field may be changed for; missing: "
              f"{', '.join(missing)}")


def _recipients(c: Checker, value: Any) -> None:
    key = (*_ROOT, "recipients")
    if not isinstance(value, list):
        c.err(key, f"expected a list of recipients ([] for none), got {show(value)}")
        return
    for i, item in enumerate(value):
        k = (*key, i)
        if not c.mapping(k, item):
            continue
        c.keys(k, item, RECIPIENT_KEYS)
        for name in ("name", "kind"):
            if name not in item:
                c.err((*k, name), "required key is missing")
        if "name" in item:
            c.string((*k, "name"), item["name"])
        if "kind" in item:
            c.choice((*k, "kind"), item["kind"], tuple(RecipientKind), "recipient kind")
        if "country" in item:
            _country(c, (*k, "country"), item["country"])


def _transfers(c: Checker, value: Any) -> None:
    key = (*_ROOT, "transfers")
    if not isinstance(value, list):
        c.err(key, f"expected a list of transfers ([] for none), got {show(value)}")
        return
    for i, item in enumerate(value):
        k = (*key, i)
        if not c.mapping(k, item):
            continue
        c.keys(k, item, TRANSFER_KEYS)
        for name in ("country", "recipient", "safeguard"):
            if name not in item:
                c.err((*k, name), "required key is missing")
        if "country" in item and _country(c, (*k, "country"), item["country"]) and (
            item["country"] in EEA
        ):
            c.err((*k, "country"), f"{item['country']} lies in the EEA: not a transfer to a "
                  "third country (list the recipient under recipients)")
        if "recipient" in item:
            c.string((*k, "recipient"), item["recipient"])
        if "safeguard" in item:
            c.choice((*k, "safeguard"), item["safeguard"], tuple(Safeguard), "safeguard")
        if "note" in item:
            c.string((*k, "note"), item["note"])


def _days(c: Checker, key: Key, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (
        1 <= value <= MAX_RETENTION_DAYS
    ):
        c.err(key, f"expected a number of days from 1 to {MAX_RETENTION_DAYS}, got {show(value)}")


def _retention(c: Checker, value: Any) -> None:
    key = (*_ROOT, "retention")
    if not c.mapping(key, value):
        return
    c.keys(key, value, RETENTION_KEYS)
    if "default" not in value:
        c.err((*key, "default"), "required key is missing")
    else:
        _days(c, (*key, "default"), value["default"])
    categories = value.get("categories", {})
    if not c.mapping((*key, "categories"), categories):
        return
    for category, days in categories.items():
        k = (*key, "categories", category)
        if c.category(k, category):
            _days(c, k, days)
