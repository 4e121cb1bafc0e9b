"""The chain's pure parts: canonical encoding, hashing, verification of rows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.chain import GENESIS, ChainState, canonical, check_rows, entry_hash
from audit.ids import uuid7

bodies = st.lists(
    st.dictionaries(st.text(max_size=8), st.text(max_size=20) | st.integers(), max_size=4),
    min_size=1,
    max_size=8,
)


def _chain(entries: list[dict[str, object]]) -> list[tuple[int, str, str, str]]:
    rows, prev = [], GENESIS
    for seq, entry in enumerate(entries, start=1):
        body = canonical({**entry, "audit_id": f"id{seq}"})
        digest = entry_hash(seq, prev, body)
        rows.append((seq, body, prev, digest))
        prev = digest
    return rows


def test_canonical_is_sorted_compact_ascii() -> None:
    assert canonical({"b": 1, "a": "é"}) == '{"a":"\\u00e9","b":1}'


@given(bodies)
def test_an_intact_chain_verifies(entries: list[dict[str, object]]) -> None:
    rows = _chain(entries)
    state = ChainState()
    assert check_rows(state, rows)
    assert (state.entries, state.head) == (len(rows), rows[-1][3])


@given(bodies, st.data())
def test_any_changed_body_is_found(entries: list[dict[str, object]], data: st.DataObject) -> None:
    rows = _chain(entries)
    index = data.draw(st.integers(0, len(rows) - 1))
    seq, body, prev, digest = rows[index]
    rows[index] = (seq, body + " ", prev, digest)
    state = ChainState()
    assert not check_rows(state, rows)
    assert state.first_bad is None or state.first_bad == f"id{index + 1}"
    assert state.entries == index


@given(bodies, st.data())
def test_a_missing_or_swapped_row_is_found(
    entries: list[dict[str, object]], data: st.DataObject
) -> None:
    rows = _chain([*entries, {"x": 1}])
    index = data.draw(st.integers(0, len(rows) - 2))
    swapped = [*rows[:index], rows[index + 1], rows[index], *rows[index + 2 :]]
    assert not check_rows(ChainState(), swapped)
    assert not check_rows(ChainState(), rows[:index] + rows[index + 1 :])


def test_chunks_continue_one_state() -> None:
    rows = _chain([{"n": i} for i in range(10)])
    state = ChainState()
    assert check_rows(state, rows[:4]) and check_rows(state, rows[4:])
    assert state.entries == 10


def test_uuid7_is_sortable_and_versioned() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)
    assert len(set(ids)) == 50
    assert ids == sorted(ids)  # made one after the other: sorted


def test_uuid7_holds_the_time_it_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The text put together from parts is RFC 9562's layout: 48 bits of milliseconds,
    the version, 12 bits of sub-millisecond time, the variant, 62 random bits - across
    a change of millisecond (the millisecond's part is cached)."""
    import time
    import uuid

    from audit import ids

    for ns in (1_764_482_400_123_456_789, 1_764_482_400_123_999_999, 1_764_482_400_124_000_000):
        monkeypatch.setattr(ids.time, "time_ns", lambda ns=ns: ns)
        made = [uuid.UUID(ids.uuid7()) for _ in range(200)]
        for value in made:
            assert value.version == 7 and value.variant == uuid.RFC_4122
            assert value.int >> 80 == ns // 1_000_000
            assert value.int >> 64 & 0xFFF == ns % 1_000_000 * 4096 // 1_000_000
        random_parts = [value.int & ((1 << 62) - 1) for value in made]
        assert len(set(random_parts)) == 200
        # every one of the 62 bits varies
        assert all(any(p >> bit & 1 for p in random_parts) for bit in range(62))
    monkeypatch.undo()
    assert abs((uuid.UUID(ids.uuid7()).int >> 80) - time.time_ns() // 1_000_000) < 2_000


def test_now_is_fixed_width_utc_and_moves_on() -> None:
    from datetime import UTC, datetime, timedelta

    from audit.entries import now_iso, parse_iso

    stamps = [now_iso() for _ in range(3)]
    assert all(len(s) == 27 and s.endswith("Z") and s[10] == "T" for s in stamps)
    assert stamps == sorted(stamps)
    assert abs(parse_iso(stamps[-1]) - datetime.now(UTC)) < timedelta(seconds=2)
