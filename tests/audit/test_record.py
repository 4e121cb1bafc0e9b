"""A change's intent and outcome encoded the short way (audit/record.py, issue 11, branch
``i11-rec``): the same bytes as before, on many generated changes.

The oracle is the old path, frozen here: every entry body encoded by the canonical form's
definition (the standard library's ``json``, sorted keys, no spaces, ASCII) and checked
by the old ``check_storable`` (:func:`_old_check_storable`). Generated values include
what makes orjson and json differ (non-ASCII, DEL, floats out of orjson's exact range,
integers beyond 64 bits, NaN), what the store refuses (NUL, lone surrogates), escapes
and backslashes, and clear values whose keys are named like the body's own members.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pytest

from audit import AuditLog, Intent, InvalidAuditInput, Outcome
from audit.batch import Pending, seal_into
from audit.bodies import intent_body
from audit.crypto import Sealer, encode_side
from audit.entries import ToSeal, check_key, check_storable, split_values
from audit.ids import uuid7
from audit.record import intent_text, outcome_text
from audit.types import SEALED_SENSITIVITIES
from common.canonical import reference_json
from tests.audit.conftest import sql

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _old_check_storable(body: Mapping[str, Any], text: str) -> None:
    """audit.entries.check_storable before i11-rec (frozen)."""
    for key in ("system", "customer_id", "actor"):
        check_key(body.get(key), key)
    if "\\u0000" not in text and "\\ud" not in text:
        return
    for key, value in body.items():
        if _holds(value):
            raise InvalidAuditInput(f"{key} holds a character the audit store cannot hold")


def _holds(value: object) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_holds(k) or _holds(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(v) for v in value)
    return False


def _old_split_values(
    intent: Intent,
) -> tuple[dict[str, Any], dict[str, Any], list[ToSeal]]:
    """audit.entries.split_values before i11-rec (frozen)."""
    clear: dict[str, dict[str, Any]] = {"before": {}, "after": {}}
    to_seal: list[ToSeal] = []
    protected = intent.protected
    for side, values in (("before", intent.before), ("after", intent.after)):
        personal: dict[str, Any] = {}
        for path, value in values.items():
            if type(path) is not str:
                raise InvalidAuditInput(f"{side} must be a mapping of field paths")
            if protected.get(path) in SEALED_SENSITIVITIES:
                personal[path] = value
            else:
                clear[side][path] = value
        if personal:
            to_seal.append((side, tuple(sorted(personal)), encode_side(personal)))
    return clear["before"], clear["after"], to_seal


def _split(split: Any, intent: Intent) -> Any:
    try:
        return split(intent)
    except InvalidAuditInput:
        return InvalidAuditInput


def _old_text(body: Mapping[str, Any]) -> str | type[Exception]:
    """The old path's text of ``body``, or the kind of error it raised."""
    try:
        text = reference_json(body, ascii_only=True)
    except (TypeError, ValueError):
        return TypeError
    try:
        _old_check_storable(body, text)
    except InvalidAuditInput:
        return InvalidAuditInput
    return text


class Code(StrEnum):
    A = "edit_conflict"
    B = "weird \"code\" \u00e9"


_STRINGS = (
    "plain", "", "with space", "quote\"d", "back\\slash", "new\nline", "tab\t", "ctrl\x01",
    "del\x7f", "caf\u00e9", "\u65e5\u672c", "emoji \U0001f600", "nul\x00", "sur\ud800",
    "\\u0000 typed", "\\ud800 typed", ',"changed":', "changed", "after", "sealed",
    Code.A, Code.B, "a" * 300,
)  # fmt: skip
_NUMBERS = (
    0, 1, -7, 2**63 - 1, 2**64, -(2**70), True, False, 0.0, -0.0, 0.5, 1e-4, 9.99e-5,
    1e16, 9.9e15, 1e300, 12.345, -3.25e-7, float("nan"), float("inf"),
)  # fmt: skip
_PATHS = ("phone", "email", "name", "changed", "after", "sealed", "caf\u00e9", "x\"y", "z")


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.45 or depth > 2:
        return rng.choice(_STRINGS)
    if roll < 0.75:
        return rng.choice(_NUMBERS)
    if roll < 0.79:
        return None
    if roll < 0.8:
        return rng.choice((object(), {1: "x"}, b"bytes"))
    if roll < 0.9:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(_PATHS): _value(rng, depth + 1) for _ in range(rng.randrange(3))}


def _plainish(rng: random.Random) -> str:
    """Mostly plain text, now and then one of the odd strings."""
    return rng.choice(_STRINGS) if rng.random() < 0.15 else f"v{rng.randrange(10**6)}"


def _change(rng: random.Random) -> tuple[Intent, Outcome]:
    paths = rng.sample(_PATHS, rng.randrange(1, 4))
    levels = ("personal", "restricted", "internal", "public")
    protected = {p: rng.choice(levels) for p in paths}
    intent = Intent(
        actor=_plainish(rng) or "actor", roles=tuple(sorted({_plainish(rng), "editor"})),
        system=rng.choice(("keycom", "billbee", "caf\u00e9")), customer_id=_plainish(rng) or "1",
        purpose=rng.choice((None, "customer_service", _plainish(rng) or "p")),
        request_id=_plainish(rng) or "r", action=rng.choice(("update", "delete")),
        changed=tuple(paths), before={p: _value(rng) for p in paths},
        after={p: _value(rng) for p in paths}, protected=protected,
        policy_version=rng.choice(("sha256:" + "ab" * 32, "", _plainish(rng))),
        retention_days=rng.choice((None, 1095)),
    )  # fmt: skip
    status = rng.choice((None, 200, 502, 2**70))
    latency = rng.choice((None, 12.345, 0, 0.0, 1e-5, 3.2e16, 7, float("nan"), 1e-4))
    outcome = Outcome(
        rng.choice(("applied", "upstream_failed", "unknown", "rejected")),
        rng.choice((None, Code.A, Code.B, "x\x00", "problem", "caf\u00e9", "del\x7f")),
        status, latency,
    )  # fmt: skip
    return intent, outcome


def test_the_split_values_intent_and_outcome_texts_are_the_old_paths_on_generated_changes() -> None:
    rng = random.Random(11)
    sealer = ("key-1", Sealer(os.urandom(32)))
    compared = {"split": 0, "intent": 0, "outcome short": 0, "outcome whole": 0}
    for _ in range(3000):
        intent, outcome = _change(rng)
        split = _split(split_values, intent)
        assert split == _split(_old_split_values, intent)
        compared["split"] += 1
        if split is InvalidAuditInput:
            continue  # a sealed value that is not JSON: refused before any encoding
        clear_before, clear_after, to_seal = split
        intent_id = uuid7()
        body = intent_body(intent_id, intent, "intent", None, None, clear_before, clear_after)
        pending = Pending(body, (intent.system, intent.customer_id), to_seal)
        if to_seal:
            seal_into(pending, sealer)
        old = _old_text(body)
        new: str | type[Exception]
        try:
            new = intent_text(body)
        except (TypeError, ValueError):
            new = TypeError
        else:
            try:
                check_storable(body, new)
            except InvalidAuditInput:
                new = InvalidAuditInput
        assert new == old
        compared["intent"] += 1
        if not isinstance(old, str):
            continue  # refused: no outcome follows
        done = intent_body(uuid7(), intent, "outcome", outcome, intent_id)
        old_outcome = _old_text(done)
        short = outcome_text(done)
        if short is None:
            compared["outcome whole"] += 1  # encoded and checked as a whole, as before
            continue
        assert short == old_outcome
        compared["outcome short"] += 1
    # every way was taken, many times
    assert min(compared.values()) > 100, compared


def test_check_storable_still_finds_a_nul_behind_a_backslash() -> None:
    body = {"system": "keycom", "customer_id": "1", "actor": "a", "after": {"x": "a\\b\x00"}}
    with pytest.raises(InvalidAuditInput, match="after"):
        check_storable(body, reference_json(body, ascii_only=True))
    typed = {"system": "keycom", "customer_id": "1", "actor": "a", "after": {"x": "\\u0000"}}
    check_storable(typed, reference_json(typed, ascii_only=True))  # the six characters: fine


async def test_stored_entries_are_the_canonical_texts_and_verify(
    store_url: str, keys: dict[str, bytes]
) -> None:
    """End to end on a real store: the gateway's way (``begin_queued``, then ``finish``,
    queued or durable), then each stored body is its own canonical text and the chain
    verifies."""
    rng = random.Random(7)
    log = await AuditLog.open(store_url, **keys)
    written = 0
    try:
        for n in range(300):
            intent, outcome = _change(rng)
            try:
                intent_id = await log.begin_queued(intent)
            except InvalidAuditInput:
                continue
            try:
                await log.finish(intent_id, outcome, durable=n % 2 == 0)
            except InvalidAuditInput:
                await log.finish(intent_id, Outcome("unknown"))
            written += 1
        await log.settle()
        report = await log.verify()
    finally:
        await log.close()
    assert report.ok and report.entries == 2 * written
    assert written > 100
    rows = await sql(store_url, "SELECT body FROM audit_entry")
    assert len(rows) == 2 * written
    for (text,) in rows:
        text = text if isinstance(text, str) else json.dumps(text)
        assert text == reference_json(json.loads(text), ascii_only=True)
