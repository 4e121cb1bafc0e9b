"""The chain's pure parts: canonical encoding, hashing, verification of rows."""

from __future__ import annotations

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


def test_now_is_fixed_width_utc_and_moves_on() -> None:
    from datetime import UTC, datetime, timedelta

    from audit.entries import now_iso, parse_iso

    stamps = [now_iso() for _ in range(3)]
    assert all(len(s) == 27 and s.endswith("Z") and s[10] == "T" for s in stamps)
    assert stamps == sorted(stamps)
    assert abs(parse_iso(stamps[-1]) - datetime.now(UTC)) < timedelta(seconds=2)
