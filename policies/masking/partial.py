"""``partial``: shape-aware partial disclosure.

An email keeps its first letter and its domain's last label (``a***@***.org``), a phone
its last two digits (``***12``), any other string its first and last ``keep`` characters
(``Jo***on``). Values too short to hide anything, and non-strings, are redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.masking.base import REDACTED, Bound, Masker, MaskingKeys, Strategy

STARS = "***"


@dataclass(frozen=True, slots=True)
class PartialOptions:
    keep: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.keep <= 4:
            raise ValueError("keep: between 1 and 4 characters")


def partial_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    label = domain.rsplit(".", 1)[1] if "." in domain else ""
    if not local or not label:
        return STARS
    return f"{local[0]}{STARS}@{STARS}.{label}"


#: every ASCII character that is not a digit (deleted by ``bytes.translate``)
_ASCII_NON_DIGITS = bytes(c for c in range(128) if not chr(c).isdigit())


def partial_phone(value: str) -> str:
    # an ASCII number (nearly every one): its digits by one translation, not per character
    digits = (
        value.encode().translate(None, _ASCII_NON_DIGITS).decode()
        if value.isascii()
        else "".join(c for c in value if c.isdigit())
    )
    if len(digits) < 6:
        return STARS
    return STARS + digits[-2:]


def partial_text(value: str, keep: int) -> str:
    if len(value) < 2 * keep + 3:
        return STARS
    return value[:keep] + STARS + value[-keep:]


def _phone(value: Any) -> Any:
    """A field of the phone shape, bound."""
    if not isinstance(value, str):
        return REDACTED
    return partial_phone(value)


class Partial(Masker):
    __slots__ = ("keep",)

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        if not isinstance(value, str):
            return REDACTED
        if shape == "email" and "@" in value:
            return partial_email(value)
        if shape == "phone":
            return partial_phone(value)
        return partial_text(value, self.keep)

    def bind(self, shape: str, path: str) -> Bound:
        """The shape chosen once per field, not per value; the text's cut inline."""
        if shape == "phone":
            return _phone
        keep = self.keep
        shortest = 2 * keep + 3  # as partial_text

        if shape == "email":

            def email(value: Any) -> Any:
                if not isinstance(value, str):
                    return REDACTED
                if "@" in value:
                    return partial_email(value)
                if len(value) < shortest:
                    return STARS
                return value[:keep] + STARS + value[-keep:]

            return email

        def text(value: Any) -> Any:
            if not isinstance(value, str):
                return REDACTED
            if len(value) < shortest:
                return STARS
            return value[:keep] + STARS + value[-keep:]

        return text


def _build(options: PartialOptions, keys: MaskingKeys, system: str) -> Masker:
    return Partial(options.keep)


STRATEGY = Strategy(name="partial", disclosure=80, options_type=PartialOptions, build=_build)
