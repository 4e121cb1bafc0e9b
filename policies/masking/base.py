"""What every masking strategy is: a name, how much it discloses, typed options, a builder."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from common.canonical import canonical_json

# The text that stands in for a value nobody may see.
REDACTED: Final = "[redacted]"

# How a value is shaped, for shape-aware strategies: from the field's format or category.
Shape = typing.Literal["email", "phone", "text"]

#: value -> what the caller sees: a masker bound to one field, its shape and its path
Bound = Callable[[Any], Any]


class Masker:
    """A strategy's masker, built once per policy with its options and keys. Called as
    ``masker(value, shape, path)``; or bound once per field of a masking plan
    (:func:`bind`), so that masking an answer is a loop of ready callables with no
    dispatch on the shape per value (issue 11)."""

    __slots__ = ()

    #: whether what it shows depends on the field's path (``aesgcm``: its associated
    #: data); one that does not is bound once for every member of a list, every member
    #: the policy does not name
    uses_path: bool = False

    def __call__(self, value: Any, shape: str, path: str) -> Any:
        raise NotImplementedError

    def bind(self, shape: str, path: str) -> Bound:
        """This masker for one field: ``bound(value) == self(value, shape, path)``."""

        def bound(value: Any) -> Any:
            return self(value, shape, path)

        return bound


def bind(masker: Masker, shape: str, path: str) -> Bound:
    """``masker`` bound to a field of ``shape`` at ``path``: value -> what is shown."""
    return masker.bind(shape, path)


class MaskingConfigError(ValueError):
    """A strategy cannot be built: bad options, or a key it needs is missing."""


@dataclass(frozen=True, slots=True)
class MaskingKeys:
    """The secrets keyed strategies use; never shown by repr."""

    pseudonym_key: bytes = field(repr=False)
    hash_salt: bytes = field(repr=False)
    encryption_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class NoOptions:
    """A strategy that takes no options."""


@dataclass(frozen=True, slots=True)
class Strategy:
    """One masking strategy: ``disclosure`` ranks how much of the value it reveals
    (higher reveals more); with several roles the caller gets the most revealing one."""

    name: str
    disclosure: int
    options_type: type[Any]
    build: Callable[[Any, MaskingKeys, str], Masker]
    needs: str = ""  # the key it needs, for the docs and errors

    def parse_options(self, raw: Mapping[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        """Typed options from a policy mapping: (options, [(key, message), ...])."""
        return parse_options(self.options_type, raw)


def parse_options(cls: type[Any], raw: Mapping[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    errors: list[tuple[str, str]] = []
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            valid = ", ".join(sorted(known)) or "none"
            errors.append((key, f"unknown option (valid: {valid})"))
            continue
        expected = hints[key]
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            errors.append((key, f"expected an integer, got {value!r}"))
            continue
        if expected is str and not isinstance(value, str):
            errors.append((key, f"expected a string, got {value!r}"))
            continue
        kwargs[key] = value
    if errors:
        return None, errors
    try:
        return cls(**kwargs), []
    except ValueError as exc:
        return None, [("", str(exc))]


def canonical(value: Any) -> bytes:
    """A stable byte form of a JSON value, the input of hashing and sealing: its canonical
    JSON in UTF-8 (NaN and infinities written as ``NaN``/``Infinity``, as always)."""
    return canonical_json(value, allow_nan=True).encode()
