"""A change's two entries encoded the short way (issue 11, branch ``i11-rec``).

Every change the gateway forwards writes an intent and, once the upstream answered, its
outcome; each body is encoded as canonical JSON (:func:`audit.chain.canonical`), which
walks the whole body first to tell whether orjson writes it exactly as the standard
library's ``json`` does, and each entry is checked storable
(:func:`audit.entries.check_storable`). Most of that walk and check is known already for
these two: the intent was checked (:func:`audit.entries.check_intent`: every member a
string, a tuple of strings or None) and its values split
(:func:`audit.entries.split_values`: sealed under string paths), so only its clear
values are walked; the outcome's members are the intent's - checked, and found
storable, when it was begun - and a checked outcome's, so only its numbers are looked
at, and it is not checked again.

The texts are the bytes ``canonical`` gives for the same bodies
(``tests/audit/test_record.py`` compares them on generated changes, with a frozen copy
of the old path as its oracle); where a value is not of those plain kinds, the body is
encoded and checked as a whole, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from audit.chain import canonical
from common.canonical import is_plain

_SORT: Final = orjson.OPT_SORT_KEYS


def intent_text(body: dict[str, Any]) -> str:
    """The canonical text of an intent's body as :meth:`audit.AuditLog.begin_queued`
    builds it (its intent checked: every member a string, a tuple of strings, None, an
    int, or the sealed values' own strings), sealed or not: only its clear values are
    looked at before orjson writes it, then the whole text is as ``canonical`` would
    write it (non-ASCII or DEL, or a value of another kind: ``canonical`` itself)."""
    if is_plain(body["before"]) and is_plain(body["after"]):
        try:
            text = orjson.dumps(body, option=_SORT)
        except orjson.JSONEncodeError:
            return canonical(body)
        if text.isascii() and b"\x7f" not in text:
            return text.decode()
    return canonical(body)


def outcome_text(body: Mapping[str, Any]) -> str | None:
    """The canonical text of an outcome's ``body``, made by
    :func:`audit.bodies.intent_body` from an intent in flight - checked, and its entry
    checked storable (:func:`audit.entries.check_storable`), when it was begun - and a
    checked outcome: only the outcome's own numbers are looked at. None when the text
    would not be orjson's (a number of another kind or out of its range, non-ASCII or
    DEL, a NUL or surrogate to refuse): the caller encodes and checks the body."""
    latency = body["upstream_latency_ms"]  # a float rounded by body_of, or None
    if latency is not None and not (1e-4 <= abs(latency) < 1e16 or latency == 0.0):
        return None
    status = body["upstream_status"]
    if status is not None and type(status) is not int:
        return None
    # the outcome's own text (its result is one of the vocabulary's): a NUL, a
    # surrogate, DEL or any other character orjson and json write differently is not
    # printable ASCII
    problem = body["problem_code"]
    if problem is not None and not (problem.isascii() and problem.isprintable()):
        return None
    try:
        text = orjson.dumps(body, option=_SORT)
    except orjson.JSONEncodeError:
        return None
    # the intent's members: storable (checked with it), but not necessarily ASCII
    if not text.isascii() or b"\x7f" in text:
        return None
    return text.decode()
