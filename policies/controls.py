"""Which characters a string field refuses: control characters and unpaired surrogates.

Every string the gateway forwards or audits is checked for NUL, the C0 controls
(U+0000-U+001F), DEL (U+007F), the C1 controls (U+0080-U+009F) - Unicode category Cc -
and unpaired surrogates (U+D800-U+DFFF, which JSON's ``\\uD800`` escapes can smuggle in
and which no UTF-8 encoder accepts). A NUL is refused by PostgreSQL; an ESC rewrites a
terminal; a surrogate fails every later encode; none of them is a name or an address.

A policy may open a free-text field to line breaks and tabs with ``allow_controls``
(:data:`CONTROLS`); nothing else can be allowed. The patterns are built once, at load,
and shared: a check is one ``re.search`` in C.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Final

#: ``allow_controls`` names and the characters each opens a field to.
CONTROLS: Final[Mapping[str, str]] = {"newline": "\n\r", "tab": "\t"}

_REFUSED: Final = frozenset(
    [chr(c) for c in range(0x00, 0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
)


@functools.cache
def _pattern(allowed: frozenset[str]) -> re.Pattern[str]:
    opened = "".join(CONTROLS[name] for name in sorted(allowed))
    refused = sorted(c for c in _REFUSED if c not in opened)
    chars = "".join(f"\\x{ord(c):02x}" for c in refused)
    return re.compile(f"[{chars}\\ud800-\\udfff]")


def refused_characters(allowed: Iterable[str] = ()) -> re.Pattern[str]:
    """A pattern that finds a refused character; ``allowed`` are :data:`CONTROLS` names."""
    return _pattern(frozenset(allowed))


#: the pattern of a field that allows nothing (every field without ``allow_controls``)
STRICT: Final = refused_characters()


def has_refused_character(text: str) -> bool:
    """Whether ``text`` holds a control character or an unpaired surrogate."""
    return STRICT.search(text) is not None
