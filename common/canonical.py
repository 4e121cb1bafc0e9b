"""Canonical JSON: the one encoding that every hash, tag and seal of the gateway is taken
of - the audit chain's entry bodies and sealed values, the ETag and content tag of an
upstream record, the masking strategies' input, the policy revision.

Keys sorted, no whitespace (separators ``,`` and ``:``), so equal values always give
equal text. Two choices differ by use and are fixed per use, because a hash taken of the
text must never change:

* ``ascii_only``: every non-ASCII character escaped (``\\u00e9``). The audit chain's
  bodies and sealed values are ASCII; everything else is UTF-8 text.
* ``allow_nan``: NaN and the infinities are not JSON. Refused by default (``ValueError``);
  the forms that have always written them (``NaN``, ``Infinity``) keep doing so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

Encode = Callable[[Any], str]

_ENCODERS: Final[dict[tuple[bool, bool], Encode]] = {
    (ascii_only, allow_nan): json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=allow_nan
    ).encode
    for ascii_only in (False, True)
    for allow_nan in (False, True)
}


def encoder(*, ascii_only: bool = False, allow_nan: bool = False) -> Encode:
    """The canonical encoder with these choices, for a hot path that binds it once."""
    return _ENCODERS[ascii_only, allow_nan]


def canonical_json(value: Any, *, ascii_only: bool = False, allow_nan: bool = False) -> str:
    """The canonical JSON text of ``value``; ``TypeError`` for a value JSON cannot hold,
    ``ValueError`` for NaN or an infinity unless ``allow_nan``."""
    return _ENCODERS[ascii_only, allow_nan](value)
