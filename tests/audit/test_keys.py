"""Keys: nothing personal in clear on disk, the master key guards the subject keys,
rotation re-wraps them without touching entries."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from audit import AuditLog, InvalidAuditInput, KeyMismatch, Outcome, rotate_master_key
from audit.batch import Pending, Slot
from audit.crypto import (
    Sealer,
    SealError,
    encode_side,
    kek_id,
    new_data_key,
    open_side,
    open_value,
    seal_side,
    seal_value,
    unwrap_key,
    wrap_key,
)
from audit.keyring import KeyRing
from tests.audit.conftest import EMAIL_AFTER, EMAIL_BEFORE, PHONE_AFTER, make_intent, sql

PERSONAL = (EMAIL_BEFORE, EMAIL_AFTER, PHONE_AFTER)
PO = {"actor": "olga", "roles": ("privacy_officer",)}


def test_sealed_value_is_bound_to_entry_side_and_field() -> None:
    key = new_data_key()
    blob = seal_value(key, {"street": "Main 1"}, "entry-a", "after", "Address")
    assert open_value(key, blob, "entry-a", "after", "Address") == {"street": "Main 1"}
    for place in (("entry-b", "after", "Address"), ("entry-a", "before", "Address"),
                  ("entry-a", "after", "Email")):  # fmt: skip
        with pytest.raises(SealError):
            open_value(key, blob, *place)
    with pytest.raises(SealError):
        open_value(new_data_key(), blob, "entry-a", "after", "Address")


def test_sealed_side_is_bound_to_entry_side_and_paths() -> None:
    sealer = Sealer(new_data_key())
    values = {"Address": {"street": "Main 1"}, "Email": "a@example.org"}
    plain = encode_side(values)
    paths = ("Address", "Email")
    box = seal_side(sealer, plain, "entry-a", "after", paths)
    assert open_side(sealer, box, "entry-a", "after", list(paths)) == values
    for place in (("entry-b", "after", ["Address", "Email"]),
                  ("entry-a", "before", ["Address", "Email"]),
                  ("entry-a", "after", ["Address"]), ("entry-a", "after", ["AddressEmail"])):
        with pytest.raises(SealError):
            open_side(sealer, box, *place)  # fmt: skip
    with pytest.raises(SealError):
        open_side(Sealer(new_data_key()), box, "entry-a", "after", list(paths))


def test_a_side_value_that_is_not_json_is_named() -> None:
    with pytest.raises(InvalidAuditInput, match="'Phone'"):
        encode_side({"Email": "a@example.org", "Phone": object()})


def test_wrapped_key_opens_only_under_its_master_and_subject() -> None:
    master, data = os.urandom(32), new_data_key()
    wrapped = wrap_key(master, data, "k1", "billbee", "1002")
    assert unwrap_key(master, wrapped, "k1", "billbee", "1002") == data
    with pytest.raises(SealError):
        unwrap_key(os.urandom(32), wrapped, "k1", "billbee", "1002")
    with pytest.raises(SealError):
        unwrap_key(master, wrapped, "k1", "billbee", "1003")
    assert kek_id(master) != kek_id(os.urandom(32))


@pytest.mark.parametrize(
    "binding",
    [
        ("k1", "billbee", "1002"),
        ("0190-a", "keycom", 'q"\\\n\x7f\u2028 \u00e9\U0001d11e'),
        ("", "", ""),
    ],
)
def test_wrapping_is_bound_to_the_same_bytes_with_a_cached_master(
    binding: tuple[str, str, str],
) -> None:
    """The wrapping's associated data is still json.dumps of the four strings (every
    stored key is bound to those bytes), and a master key given as a Sealer (built once,
    as the key ring does) wraps and opens what its bytes wrap and open."""
    import json

    from audit import crypto
    from common.aead import open_sealed, seal

    context = crypto._WRAP_CONTEXT
    aad = json.dumps([context, *binding]).encode()
    assert crypto._wrap_aad(*binding) == aad
    master, data = os.urandom(32), new_data_key()
    before = seal(master, data, aad)  # wrapped as the previous code did
    assert unwrap_key(Sealer(master), before, *binding) == data
    assert open_sealed(master, wrap_key(Sealer(master), data, *binding), aad) == data
    with pytest.raises(SealError):
        unwrap_key(Sealer(os.urandom(32)), before, *binding)


async def test_raw_sqlite_files_hold_no_personal_value(tmp_path: Path) -> None:
    from audit import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await upgrade(url)
    log = await AuditLog.open(url, master_key=os.urandom(32), signing_key=os.urandom(32))
    try:
        for i in range(20):
            intent_id = await log.begin(make_intent(str(5000 + i)))
            await log.finish(intent_id, Outcome("applied"))
        names, raw = await asyncio.to_thread(_read_files, tmp_path)
        assert names >= {"audit.db", "audit.db-wal"}
        assert b"new note" in raw  # the reading works: an internal value is in clear
        leaked = [n for n, v in enumerate(PERSONAL) if v.encode() in raw]
        assert leaked == [], "personal values (by index) found in clear on disk"
    finally:
        await log.close()
    _, raw = await asyncio.to_thread(_read_files, tmp_path)
    assert [n for n, v in enumerate(PERSONAL) if v.encode() in raw] == []


def _read_files(directory: Path) -> tuple[set[str], bytes]:
    """The SQLite database file and its WAL, as raw bytes."""
    files = sorted(p for p in directory.iterdir() if p.name.startswith("audit.db"))
    return {p.name for p in files}, b"".join(p.read_bytes() for p in files)


async def test_stored_rows_hold_no_personal_value(audit_log: AuditLog, store_url: str) -> None:
    await audit_log.record(make_intent(), Outcome("applied"))
    rows = await sql(store_url, "SELECT body FROM audit_entry")
    text = "".join(str(r[0]) for r in rows)
    assert "new note" in text
    assert [n for n, v in enumerate(PERSONAL) if v in text] == []


async def test_wrong_master_key_is_refused(store_url: str, keys: dict[str, bytes]) -> None:
    log = await AuditLog.open(store_url, **keys)
    await log.record(make_intent(), Outcome("applied"))
    await log.close()
    with pytest.raises(KeyMismatch):
        await AuditLog.open(store_url, master_key=os.urandom(32), signing_key=keys["signing_key"])


async def test_rotation_rewraps_keys_and_leaves_entries(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, **keys)
    audit_id = await log.record(make_intent(), Outcome("applied"))
    await log.record(make_intent("7777"), Outcome("applied"))
    await log.close()
    before = await sql(store_url, "SELECT seq, body, hash FROM audit_entry ORDER BY seq")

    new_master = os.urandom(32)
    assert await rotate_master_key(store_url, keys["master_key"], new_master) == 2
    assert await sql(store_url, "SELECT seq, body, hash FROM audit_entry ORDER BY seq") == before
    with pytest.raises(KeyMismatch):
        await AuditLog.open(store_url, **keys)
    log = await AuditLog.open(store_url, master_key=new_master, signing_key=keys["signing_key"])
    try:
        clear, _ = await log.reveal(audit_id, actor="o", roles=("privacy_officer",),
                                    reason="after rotation", request_id="r")  # fmt: skip
        assert clear["after"]["Email"] == EMAIL_AFTER
        assert (await log.verify()).ok
    finally:
        await log.close()
    with pytest.raises(KeyMismatch):
        await rotate_master_key(store_url, os.urandom(32), os.urandom(32))


async def test_a_process_with_the_old_master_key_stops_after_rotation(
    store_url: str, keys: dict[str, bytes]
) -> None:
    log = await AuditLog.open(store_url, **keys)
    try:
        audit_id = await log.record(make_intent("1"), Outcome("applied"))
        await rotate_master_key(store_url, keys["master_key"], os.urandom(32))
        with pytest.raises(KeyMismatch):  # not "erased": the value lives on
            await log.reveal(audit_id, actor="o", roles=("privacy_officer",), reason="r",
                             request_id="r")  # fmt: skip
        from audit import AuditUnavailable

        with pytest.raises(AuditUnavailable):  # a new subject would mix master keys
            await log.record(make_intent("2"), Outcome("applied"))
        await log.record(make_intent("1"), Outcome("applied"))  # its key is unchanged
    finally:
        await log.close()


def _cached(log: AuditLog, subject: tuple[str, str]) -> Sealer:
    """The writer's cached key of ``subject`` (white-box: what erasure must destroy); the
    entries of these tests carry no retention, so the subject has one slot."""
    (sealer,) = [key[1] for slot, key in log._writer._keyring.cached.items()
                 if slot[:2] == subject]  # fmt: skip
    return sealer


async def test_erasure_destroys_the_cached_key_at_once(audit_log: AuditLog) -> None:
    await audit_log.record(make_intent("1002"), Outcome("applied"))
    sealer = _cached(audit_log, ("billbee", "1002"))
    # an entry sealed in its caller's task under the cached key, queued behind the erasure
    erased, later = await asyncio.gather(
        audit_log.erase("billbee", "1002", reason="Art. 17", request_id="r", **PO),
        audit_log.record(make_intent("1002"), Outcome("applied")),
    )
    assert sealer.destroyed
    with pytest.raises(SealError):
        sealer.seal(b"x", b"aad")
    clear, _ = await audit_log.reveal(later, reason="check", request_id="r", **PO)
    assert clear["after"]["Email"] == EMAIL_AFTER  # re-sealed under the subject's new key
    assert _cached(audit_log, ("billbee", "1002")) is not sealer
    assert (await audit_log.get(erased))["action"] == "erase"


async def test_erasure_by_another_process_destroys_the_cached_key_before_the_next_append(
    audit_log: AuditLog, store_url: str, keys: dict[str, bytes]
) -> None:
    first = await audit_log.record(make_intent("1002"), Outcome("applied"))
    sealer = _cached(audit_log, ("billbee", "1002"))
    other = await AuditLog.open(store_url, **keys)
    try:
        await other.erase("billbee", "1002", reason="Art. 17", request_id="r", **PO)
    finally:
        await other.close()
    later = await audit_log.record(make_intent("1002"), Outcome("applied"))
    assert sealer.destroyed
    old, _ = await audit_log.reveal(first, reason="check", request_id="r", **PO)
    new, _ = await audit_log.reveal(later, reason="check", request_id="r", **PO)
    assert (old["after"]["Email"], new["after"]["Email"]) == ("erased", EMAIL_AFTER)


def test_the_key_cache_drops_the_least_recently_used_beyond_its_bound() -> None:
    ring = KeyRing(new_data_key(), max_keys=2)
    keys = {slot: (f"k{n}", Sealer(new_data_key()))
            for n, slot in enumerate([("billbee", str(n), None) for n in range(3)])}  # fmt: skip
    first, second, third = keys
    ring.learn({first: keys[first], second: keys[second]})
    ring.touch([_sealing(first)])  # used: the second is now the least recent
    ring.learn({third: keys[third]})
    assert list(ring.cached) == [first, third]
    assert not keys[second][1].destroyed  # dropped, not destroyed: a caller may hold it
    ring.forget([("billbee", "0")])  # an erasure still reaches the kept slots
    assert keys[first][1].destroyed and list(ring.cached) == [third]
    assert ring._slots == {("billbee", "2"): {third}}  # no empty subject entries left


def test_the_marks_of_use_stay_within_the_cached_keys() -> None:
    """The slots marked used since the weekly pruning are only the cached ones: a slot the
    bound dropped, or an erasure forgot, leaves no mark behind (they grew with every
    slot used in a week, unlike the bounded cache)."""
    ring = KeyRing(new_data_key(), max_keys=2)
    slots = [("billbee", str(n), None) for n in range(50)]
    for n, slot in enumerate(slots):
        ring.touch([_sealing(slot)])
        ring.learn({slot: (f"k{n}", Sealer(new_data_key()))})
    assert ring._used == set(ring.cached) == set(slots[-2:])
    ring.forget([("billbee", "49")])
    assert ring._used == set(ring.cached) == {slots[-2]}


async def test_a_subject_whose_key_left_the_cache_gets_the_same_key_back(
    audit_log: AuditLog, store_url: str
) -> None:
    audit_log._writer._keyring._max = 2  # white-box: a small bound
    first = await audit_log.record(make_intent("1001"), Outcome("applied"))
    for customer in ("1002", "1003", "1004"):
        await audit_log.record(make_intent(customer), Outcome("applied"))
    assert ("billbee", "1001") not in {slot[:2] for slot in audit_log._writer._keyring.cached}
    again = await audit_log.record(make_intent("1001"), Outcome("applied"))
    assert len(audit_log._writer._keyring.cached) == 2
    rows = await sql(store_url, "SELECT customer_id FROM audit_subject_key ORDER BY customer_id")
    assert [r[0] for r in rows] == ["1001", "1002", "1003", "1004"]  # looked up, not made again
    for audit_id in (first, again):
        clear, _ = await audit_log.reveal(audit_id, reason="check", request_id="r", **PO)
        assert clear["after"]["Email"] == EMAIL_AFTER


def _sealing(slot: Slot) -> Pending:
    """A queued entry with a value to seal under ``slot``'s key (what touch looks at)."""
    return Pending({}, (slot[0], slot[1]), [("after", ("Email",), b"{}")], expires=slot[2])
