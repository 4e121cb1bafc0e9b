"""Deterministic, realistic-looking people and companies for generated customers.

Everything is derived from ``random.Random(f"{system}:{id}")``, so a record depends only
on its system and id. Emails use the reserved ``example.*`` domains; US phone numbers
use the fictional 555-01xx range.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import yaml

_LOCALES: dict[str, dict[str, tuple[str, ...]]] = {
    locale: {part: tuple(names) for part, names in parts.items()}
    for locale, parts in yaml.safe_load(
        (Path(__file__).parent / "locales.yaml").read_text(encoding="utf-8")
    ).items()
}

_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ø": "oe", "å": "aa",
                        "æ": "ae", "é": "e"})


@dataclass(frozen=True, slots=True)
class Person:
    """One generated data subject (a person, and the company name they may trade as)."""

    first: str
    last: str
    email: str
    phone: str
    mobile: str
    street: str
    zip_code: str
    city: str
    state: str
    company: str

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"


def rng_for(system: str, customer_id: int) -> random.Random:
    """The random source of one generated record."""
    return random.Random(f"{system}:{customer_id}")


def _slug(text: str) -> str:
    return text.lower().translate(_ASCII).replace(" ", "")


def _phone(locale: str, rng: random.Random, *, mobile: bool = False) -> str:
    if locale == "de":
        prefix = rng.choice(("151", "160", "172", "176")) if mobile else rng.choice(
            ("30", "40", "89", "221", "341"))
        return f"+49 {prefix} {rng.randint(1000000, 9999999)}"
    if locale == "dk":
        digits = f"{rng.randint(20, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} " \
            f"{rng.randint(10, 99)}"
        return f"+45 {digits}"
    if locale == "fi":
        prefix = rng.choice(("40", "44", "50")) if mobile else rng.choice(("9", "3", "17"))
        return f"+358 {prefix} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    return f"({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"


def _zip(locale: str, rng: random.Random) -> str:
    if locale == "de":
        return f"{rng.randint(1067, 99998):05d}"
    if locale == "dk":
        return str(rng.randint(1000, 9990))
    if locale == "fi":
        return f"{rng.randint(100, 99990):05d}"
    return f"{rng.randint(10001, 99950):05d}"


def person(locale: str, rng: random.Random) -> Person:
    """A person of ``locale`` (``de``, ``dk``, ``us``, ``fi``) drawn from ``rng``."""
    words = _LOCALES[locale]
    first = rng.choice(words["first"])
    last = rng.choice(words["last"])
    sep = rng.choice((".", "_", ""))
    email = f"{_slug(first)}{sep}{_slug(last)}{rng.randint(1, 99)}@{rng.choice(words['domain'])}"
    number = rng.randint(1, 120)
    street = f"{number} {rng.choice(words['street'])}" if locale == "us" else \
        f"{rng.choice(words['street'])} {number}"
    return Person(
        first=first,
        last=last,
        email=email,
        phone=_phone(locale, rng),
        mobile=_phone(locale, rng, mobile=True),
        street=street,
        zip_code=_zip(locale, rng),
        city=rng.choice(words["city"]),
        state=rng.choice(words.get("state", ("",))),
        company=f"{last} {rng.choice(words['suffix'])}",
    )
