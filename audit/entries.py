"""Building entry bodies from intents and outcomes, and rendering them for readers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from audit.crypto import Sealer, SealError, encode_side, open_side, open_value
from audit.errors import InvalidAuditInput
from audit.types import ACTIONS, OUTCOMES, SEALED_SENSITIVITIES, Intent, Outcome
from common.canonical import is_plain

#: the body format written: 2 seals one ciphertext per entry side, 1 one per field
#: (docs/audit.md, "Body formats"); both are read
BODY_VERSION: Final = 2
MASK: Final = "***"
ERASED: Final = "erased"
UNREADABLE: Final = "undecryptable"
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
#: the longest system, customer id or actor in UTF-8 bytes: each is an indexed column, and
#: a PostgreSQL btree row holds at most 2,704 bytes (system, customer id and seq share one)
MAX_KEY_BYTES: Final = 1024
_KEYS: Final = ("system", "customer_id", "actor")
# NUL, and surrogates (unpaired: a Python str holds a non-BMP character as one code point).
# PostgreSQL's json refuses both (``\u0000`` cannot become text, a lone surrogate is not
# valid input); SQLite would take them. Refused here, so both stores behave the same.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def now_iso() -> str:
    """Now, fixed width: ``2026-01-02T03:04:05.123456Z`` (the second's text is formatted
    once per second)."""
    global _second
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    known = _second
    if known[0] != second:
        known = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{known[1]}.{micro:06d}Z"


def iso(moment: datetime) -> str:
    """A datetime in the store's fixed-width UTC text form (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _text(value: object, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidAuditInput(f"{what} must be a non-empty string")
    return value


def _strings(value: object, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, tuple | list | frozenset | set):
        raise InvalidAuditInput(f"{what} must be a sequence of strings")
    items = list(value)
    if not all(isinstance(v, str) for v in items):
        raise InvalidAuditInput(f"{what} must be a sequence of strings")
    return items


def _is_text(value: object) -> bool:
    # isinstance, as the slow path's: the gateway's roles, system and purpose are the
    # vocabulary's StrEnums (str subclasses), and ``type(v) is str`` sent every intent
    # the slow way (issue 11)
    return isinstance(value, str) and bool(value)


def check_intent(intent: Intent) -> None:
    """Reject a malformed intent with a message that names fields, never values."""
    if (  # the fast path: everything well-formed (the gateway's own intents)
        type(intent) is Intent
        and _is_text(intent.actor)
        and _is_text(intent.system)
        and _is_text(intent.customer_id)
        and _is_text(intent.request_id)
        and (intent.purpose is None or _is_text(intent.purpose))
        and intent.action in ACTIONS
        and type(intent.roles) is tuple
        and all(isinstance(r, str) for r in intent.roles)
        and type(intent.changed) is tuple
        and all(isinstance(c, str) for c in intent.changed)
        and type(intent.before) is dict
        and type(intent.after) is dict
        and isinstance(intent.protected, Mapping)
        and isinstance(intent.policy_version, str)
        and (intent.retention_days is None or _is_days(intent.retention_days))
    ):
        return
    _check_intent_slowly(intent)


def _check_intent_slowly(intent: Intent) -> None:
    if not isinstance(intent, Intent):
        raise InvalidAuditInput("expected an audit.Intent")
    _text(intent.actor, "actor")
    _strings(intent.roles, "roles")
    _text(intent.system, "system")
    _text(intent.customer_id, "customer_id")
    _text(intent.purpose, "purpose", optional=True)
    _text(intent.request_id, "request_id")
    if intent.action not in ACTIONS:
        raise InvalidAuditInput(f"action must be one of {sorted(ACTIONS)}")
    _strings(intent.changed, "changed")
    for name in ("before", "after", "protected"):
        if not isinstance(getattr(intent, name), Mapping):
            raise InvalidAuditInput(f"{name} must be a mapping of field paths")
    if not isinstance(intent.policy_version, str):
        raise InvalidAuditInput("policy_version must be a string")
    if intent.retention_days is not None and not _is_days(intent.retention_days):
        raise InvalidAuditInput("retention_days must be a positive integer or None")


def _is_days(value: object) -> bool:
    return type(value) is int and value > 0


def check_key(value: object, what: str) -> None:
    """An indexed text (system, customer id, actor): no NUL or surrogate, and at most
    :data:`MAX_KEY_BYTES` of UTF-8. Raises InvalidAuditInput naming ``what``, never the
    value."""
    if not isinstance(value, str):
        return  # types are checked where the value comes in
    if value.isascii() and "\x00" not in value and len(value) <= MAX_KEY_BYTES:
        return  # the common case: no surrogate can be ASCII
    if _UNSTORABLE.search(value):
        raise InvalidAuditInput(
            f"{what} holds a character the audit store cannot hold (NUL or a surrogate)"
        )
    if len(value) > MAX_KEY_BYTES // 4 and len(value.encode()) > MAX_KEY_BYTES:
        raise InvalidAuditInput(f"{what} is longer than {MAX_KEY_BYTES} bytes")


def check_storable(body: Mapping[str, Any], text: str) -> None:
    """Refuse an entry the store cannot hold, before it joins a group commit: the same
    on SQLite and PostgreSQL. ``text`` is the body's canonical (ASCII) JSON: only when it
    holds a ``\\u0000`` or ``\\ud…`` escape are the values themselves looked at."""
    for key in _KEYS:
        check_key(body.get(key), key)
    # one search for the escapes' backslash first: most texts hold none at all
    if "\\" not in text or ("\\u0000" not in text and "\\ud" not in text):
        return
    for key, value in body.items():
        if _holds_unstorable(value):
            raise InvalidAuditInput(
                f"{key} holds a character the audit store cannot hold (NUL or a surrogate)"
            )


def _holds_unstorable(value: object) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_holds_unstorable(k) or _holds_unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_unstorable(v) for v in value)
    return False


def check_outcome(outcome: Outcome) -> None:
    if (  # the fast path: the gateway's own outcomes
        type(outcome) is Outcome
        and outcome.outcome in OUTCOMES
        and outcome.problem_code is None
        and (outcome.upstream_status is None or type(outcome.upstream_status) is int)
        and (outcome.upstream_latency_ms is None or type(outcome.upstream_latency_ms) is float)
    ):
        return
    if not isinstance(outcome, Outcome) or outcome.outcome not in OUTCOMES:
        raise InvalidAuditInput(f"outcome must be one of {sorted(OUTCOMES)}")
    _text(outcome.problem_code, "problem_code", optional=True)
    status = outcome.upstream_status
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise InvalidAuditInput("upstream_status must be an integer")
    latency = outcome.upstream_latency_ms
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int | float)):
        raise InvalidAuditInput("upstream_latency_ms must be a number")


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidAuditInput("a reason is required")
    if len(reason) > 2000:
        raise InvalidAuditInput("the reason is longer than 2000 characters")
    return reason.strip()


#: one side's values to seal: (side, their paths sorted, the plaintext of them all)
ToSeal = tuple[str, tuple[str, ...], bytes]


def split_values(intent: Intent) -> tuple[dict[str, Any], dict[str, Any], list[ToSeal]]:
    """(clear before, clear after, [what to seal, per side that has personal values]).
    Clear values are checked when the caller encodes the entry; values to seal are
    encoded here, so the writer never meets a value it cannot encode."""
    protected = intent.protected
    to_seal: list[ToSeal] = []
    # the two sides written out: this runs for every change (issue 11, branch i11-rec)
    clear_before: dict[str, Any] = {}
    personal: dict[str, Any] = {}
    for path, value in intent.before.items():
        if type(path) is not str:
            raise InvalidAuditInput("before must be a mapping of field paths")
        if protected.get(path) in SEALED_SENSITIVITIES:
            personal[path] = value
        else:
            clear_before[path] = value
    if personal:
        to_seal.append(("before", tuple(sorted(personal)), _side_text(personal)))
    clear_after: dict[str, Any] = {}
    personal = {}
    for path, value in intent.after.items():
        if type(path) is not str:
            raise InvalidAuditInput("after must be a mapping of field paths")
        if protected.get(path) in SEALED_SENSITIVITIES:
            personal[path] = value
        else:
            clear_after[path] = value
    if personal:
        to_seal.append(("after", tuple(sorted(personal)), _side_text(personal)))
    return clear_before, clear_after, to_seal


def _side_text(values: dict[str, Any]) -> bytes:
    """:func:`audit.crypto.encode_side`'s bytes, without a round trip through ``str`` when
    orjson writes them (plain values, ASCII and no DEL: what ``canonical`` would take
    from orjson too); else ``encode_side`` itself, with its errors."""
    if is_plain(values):
        try:
            text = orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return encode_side(values)
        if text.isascii() and b"\x7f" not in text:
            return text
    return encode_side(values)


def base_body(
    audit_id: str,
    *,
    actor: str,
    roles: tuple[str, ...] | list[str],
    system: str,
    customer_id: str,
    purpose: str | None,
    request_id: str,
    action: str,
    phase: str,
    outcome: Outcome | None = None,
    intent_id: str | None = None,
    changed: tuple[str, ...] | list[str] = (),
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    policy_version: str | None = None,
    reason: str | None = None,
    target_id: str | None = None,
) -> dict[str, Any]:
    """An entry's body (format :data:`BODY_VERSION`), stamped now."""
    return body_of(
        audit_id, actor, roles, system, customer_id, purpose, request_id, action, phase,
        outcome, intent_id, changed, dict(before or {}), dict(after or {}), policy_version,
        reason, target_id,
    )  # fmt: skip


def body_of(
    audit_id: str,
    actor: str,
    roles: tuple[str, ...] | list[str],
    system: str,
    customer_id: str,
    purpose: str | None,
    request_id: str,
    action: str,
    phase: str,
    outcome: Outcome | None,
    intent_id: str | None,
    changed: tuple[str, ...] | list[str],
    before: dict[str, Any],
    after: dict[str, Any],
    policy_version: str | None,
    reason: str | None,
    target_id: str | None,
) -> dict[str, Any]:
    """:func:`base_body` with every member given in order, ``before`` and ``after`` taken
    as they are (not copied): for the two entries of every change (issue 11)."""
    if outcome is None:
        result = problem_code = status = latency = None
    else:
        result, problem_code = outcome.outcome, outcome.problem_code
        status, latency = outcome.upstream_status, outcome.upstream_latency_ms
        if latency is not None:
            latency = round(float(latency), 3)
    return {
        "v": BODY_VERSION,
        "audit_id": audit_id,
        "time": now_iso(),
        "actor": actor,
        "roles": list(roles),
        "system": system,
        "customer_id": customer_id,
        "purpose": purpose,
        "request_id": request_id,
        "action": action,
        "phase": phase,
        "outcome": result,
        "problem_code": problem_code,
        "upstream_status": status,
        "upstream_latency_ms": latency,
        "intent_id": intent_id,
        "changed": list(changed),
        "before": before,
        "after": after,
        "policy_version": policy_version,
        "reason": reason,
        "target_id": target_id,
    }


KeyLookup = Callable[[str], bytes | None]


def render(
    seq: int, body_text: str, prev_hash: str, hash_: str, *, key: KeyLookup | None = None
) -> dict[str, Any]:
    """The JSON-ready entry. Sealed values are ``***`` unless ``key`` (key id -> data
    key, or None when erased) is given; then they are opened, or ``erased``."""
    body = json.loads(body_text)
    sealed = body.pop("sealed", None) or {}
    key_id = body.pop("key_id", None)
    version = body.pop("v", 1)
    data_key: bytes | None = None
    if key is not None and sealed and isinstance(key_id, str):
        data_key = key(key_id)
    opener = _open_v1 if version == 1 else _open_v2
    for side in ("before", "after"):
        values = dict(body.get(side) or {})
        part = sealed.get(side) or {}
        if key is None or data_key is None:
            shown = MASK if key is None else ERASED
            values.update(dict.fromkeys(part if version == 1 else part.get("paths", ()), shown))
        else:
            values.update(opener(data_key, part, body["audit_id"], side))
        body[side] = values
    body["seq"] = seq
    body["prev_hash"] = prev_hash
    body["hash"] = hash_
    return dict(body)


def _open_v1(data_key: bytes, part: dict[str, str], audit_id: str, side: str) -> dict[str, Any]:
    """Format 1: one ciphertext per field."""
    values: dict[str, Any] = {}
    for path, blob in part.items():
        try:
            values[path] = open_value(data_key, blob, audit_id, side, path)
        except (SealError, ValueError):
            values[path] = UNREADABLE
    return values


def _open_v2(data_key: bytes, part: dict[str, Any], audit_id: str, side: str) -> dict[str, Any]:
    """Format 2: one ciphertext for the side's sealed values."""
    paths = part.get("paths") or []
    try:
        return open_side(Sealer(data_key), part["box"], audit_id, side, paths)
    except (SealError, ValueError, KeyError, TypeError):
        return dict.fromkeys(paths, UNREADABLE)
