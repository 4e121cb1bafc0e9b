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

The text is defined as what the standard library's ``json`` writes with these settings,
and it is what every call returns. Most values are written by ``orjson`` instead (about
eight times faster), which writes exactly the same text for the values it is given: dicts
with ``str`` keys, lists, tuples, ``str`` (and its subclasses, the vocabulary's
``StrEnum`` s), ``int``, ``bool``, ``None``, and floats from
1e-4 up to 1e16 or 0 (outside that range it writes small numbers differently, and NaN as
``null``); anything else, any non-ASCII text when ``ascii_only``, and anything orjson
refuses (a key that is not a ``str``, an integer beyond 64 bits, a lone surrogate) goes
to ``json``, which also raises the errors. ``tests/common/test_canonical.py`` checks that
the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import orjson

Encode = Callable[[Any], str]

_STDLIB: Final[dict[tuple[bool, bool], Encode]] = {
    (ascii_only, allow_nan): json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=allow_nan
    ).encode
    for ascii_only in (False, True)
    for allow_nan in (False, True)
}
_OPTIONS: Final = orjson.OPT_SORT_KEYS
#: the leaf types orjson writes exactly as json does: these four and every ``str``
#: subclass met so far (the vocabulary's ``StrEnum`` s: an action, an outcome, a problem
#: code), remembered so that each is one set lookup, not a call (issue 11)
_leaves: Final[set[type]] = {str, int, bool, type(None)}
#: at most this many subclasses are remembered; one past it is still written by orjson,
#: only found the slower way each time
_SUBCLASSES_KEPT: Final = 64
_LEAVES_KEPT: Final = len(_leaves) + _SUBCLASSES_KEPT


def _plain(value: Any) -> bool:
    """Is ``value`` made only of what orjson writes exactly as ``json`` does? (Dict keys
    are not looked at: orjson refuses any that is not a ``str``, and json then decides.)"""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return bool(1e-4 <= abs(value) < 1e16 or value == 0.0)  # NaN fails both
    elif kind in _leaves:
        return True
    elif isinstance(value, str):
        # a str subclass is written by both as the text it is: remembered
        if len(_leaves) < _LEAVES_KEPT:
            _leaves.add(kind)
        return True
    else:
        return False
    leaves = _leaves
    for item in items:
        kind = type(item)
        if kind in leaves:
            continue
        if kind is float:  # inlined: most values of a record are leaves or floats
            if 1e-4 <= abs(item) < 1e16 or item == 0.0:
                continue
            return False
        if not _plain(item):
            return False
    return True


#: for a hot path that encodes a body whose other members it knows to be plain
is_plain: Final = _plain


def _fast(stdlib: Encode, ascii_only: bool) -> Encode:
    def encode(value: Any) -> str:
        if _plain(value):
            try:
                text = orjson.dumps(value, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass  # an integer beyond 64 bits, a lone surrogate: json decides
            else:
                # json's ensure_ascii also escapes DEL (\u007f), which orjson writes as is
                if not ascii_only or (text.isascii() and b"\x7f" not in text):
                    return text.decode()
        return stdlib(value)

    return encode


_ENCODERS: Final[dict[tuple[bool, bool], Encode]] = {
    choice: _fast(stdlib, ascii_only=choice[0]) for choice, stdlib in _STDLIB.items()
}


def encoder(*, ascii_only: bool = False, allow_nan: bool = False) -> Encode:
    """The canonical encoder with these choices, for a hot path that binds it once."""
    return _ENCODERS[ascii_only, allow_nan]


def canonical_json(value: Any, *, ascii_only: bool = False, allow_nan: bool = False) -> str:
    """The canonical JSON text of ``value``; ``TypeError`` for a value JSON cannot hold,
    ``ValueError`` for NaN or an infinity unless ``allow_nan``."""
    return _ENCODERS[ascii_only, allow_nan](value)


def reference_json(value: Any, *, ascii_only: bool = False, allow_nan: bool = False) -> str:
    """The same text, always written by the standard library's ``json`` (the definition
    of the canonical form; for tests and for checking)."""
    return _STDLIB[ascii_only, allow_nan](value)
