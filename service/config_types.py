"""The types of configuration values: conversion by type, not by kind-strings.

A setting is declared with one of these ``Annotated`` types in ``service.config_model``
(or, for an upstream's credentials and options, next to its connector). The type says
everything the loader needs: how text from the environment or from a ``*_file`` is
parsed (:class:`Text` carries it until the type does), the bounds, whether the value is
a :class:`~service.secret.Secret`, and whether it may come from a file
(:data:`FROM_FILE`). Values written in YAML keep their YAML type and are checked
strictly: ``port: "8080"`` is a string, not a port.

Error messages are the loader's (``service.config_errors``): pydantic's error types are
mapped to sentences that never contain the value; the custom errors raised here carry
their own, equally value-free, sentence.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Self

from annotated_types import Ge, Gt
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    Strict,
    ValidationInfo,
)
from pydantic.types import AllowInfNan
from pydantic_core import PydanticCustomError

from service.secret import Secret

__all__ = [
    "FROM_FILE",
    "Credentials",
    "Flag",
    "FromFile",
    "Integer",
    "Name",
    "Number",
    "OptionalNonNegative",
    "OptionalPositive",
    "Options",
    "SecretText",
    "Section",
    "Text",
    "base64_key",
    "hex_digits",
    "problem",
    "relative_path",
]


class Text(str):
    """A value that came as text - an environment variable, a ``*_file`` - and is parsed
    by the type of its setting (YAML values arrive typed and are not parsed again)."""


class FromFile:
    """Marks a setting that may be given as ``<key>_file`` / ``<VARIABLE>_FILE``."""

    def __repr__(self) -> str:
        return "FROM_FILE"


FROM_FILE: Final = FromFile()

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def problem(message: str, *, at: str = "") -> PydanticCustomError:
    """A configuration error whose message is ``message`` (no value in it, ever); ``at``
    names a part of the setting (``[2].sha256``) the location does not reach."""
    return PydanticCustomError("config", message, {"at": at} if at else None)


def _parse_text(cast: Callable[[str], Any]) -> BeforeValidator:
    """Text is converted by ``cast``; what it refuses stays text, for the type to refuse."""

    def convert(value: Any) -> Any:
        if isinstance(value, Text):
            try:
                return cast(value.strip())
            except ValueError:
                return value
        return value

    return BeforeValidator(convert)


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError


def _optional_number(text: str) -> float | None:
    return None if text.lower() in ("", "none", "null") else float(text)


def _nonempty(value: str) -> str:
    if not value.strip():
        raise problem("must be a non-empty string")
    return value.strip()


def _secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value.strip():
        return Secret(str(value))
    raise problem("must be a non-empty string")


#: an integer (``Annotated[Integer, Ge(1)]`` for bounds)
Integer = Annotated[int, Strict(), _parse_text(int)]
#: a number: an integer or a decimal, finite
Number = Annotated[float, Strict(), AllowInfNan(False), _parse_text(float)]
#: a boolean; as text ``true/false``, ``yes/no``, ``on/off``, ``1/0``
Flag = Annotated[bool, Strict(), _parse_text(_flag)]
#: a non-empty string, surrounding spaces dropped
Name = Annotated[str, Strict(), AfterValidator(_nonempty)]
#: a secret string, held as a :class:`Secret`; may come from a file
SecretText = Annotated[Secret, PlainValidator(_secret), FROM_FILE]


#: a number greater than 0, or none (as text: empty, ``none``, ``null``)
OptionalPositive = Annotated[
    Annotated[float, Strict(), AllowInfNan(False), Gt(0)] | None,
    _parse_text(_optional_number),
]
#: a number of at least 0, or none
OptionalNonNegative = Annotated[
    Annotated[float, Strict(), AllowInfNan(False), Ge(0)] | None,
    _parse_text(_optional_number),
]


def base64_key(min_bytes: int, max_bytes: int | None = None) -> AfterValidator:
    """A :data:`SecretText` that decodes as base64 to the given number of bytes."""

    def check(secret: Secret) -> Secret:
        try:
            size = len(base64.b64decode(secret.reveal(), validate=True))
        except (binascii.Error, ValueError):
            raise problem("must be base64") from None
        if size < min_bytes or (max_bytes is not None and size > max_bytes):
            need = f"{min_bytes}" if max_bytes == min_bytes else f"at least {min_bytes}"
            raise problem(f"must decode to {need} bytes")
        return secret

    return AfterValidator(check)


def hex_digits(count: int) -> AfterValidator:
    """A :data:`SecretText` of exactly ``count`` hexadecimal digits."""
    pattern = re.compile(f"[0-9a-fA-F]{{{count}}}")

    def check(secret: Secret) -> Secret:
        if pattern.fullmatch(secret.reveal()) is None:
            raise problem(f"must be {count} hex digits")
        return secret

    return AfterValidator(check)


def relative_path(value: Any, info: ValidationInfo) -> Path:
    """A path; relative ones resolve against the config file's folder (YAML) or the
    working directory (environment)."""
    if not isinstance(value, str) or not value.strip():
        raise problem("must be a path")
    base = Path.cwd() if isinstance(value, Text) else (info.context or {}).get("base")
    return (base if isinstance(base, Path) else Path.cwd()) / value.strip()


class Section(BaseModel):
    """A mapping of the configuration: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Credentials(Section):
    """An upstream's credentials (``upstreams.<system>.credentials``): every field a
    :data:`SecretText`. Declared next to its connector, which reads them typed."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def of(cls, values: Mapping[str, Secret]) -> Self:
        """Typed access to credentials the loader already checked (the connector checks
        they are present): no validation here, so nothing can echo a value."""
        given: dict[str, Any] = {name: values[name] for name in cls.model_fields}
        return cls.model_construct(**given)


class Options(Section):
    """An upstream's options (``upstreams.<system>.options``): not secret."""

    def as_mapping(self) -> dict[str, str]:
        return {name: str(value) for name, value in self.model_dump().items()}
