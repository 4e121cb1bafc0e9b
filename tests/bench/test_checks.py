"""The bench's checker (bench/checks.py) refuses every kind of wrong run: answers that are
not 2xx, lost or unapplied answers, socket errors, upstream calls that differ from the
intended, and an audit log without one intent and one outcome per write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.checks import check_answers, check_audit, check_upstream
from bench.report import DOCS_BEGIN, DOCS_END, update_docs


def wrk_result(statuses: dict[str, int], *, applied: int | None = None,
               **errors: int) -> dict[str, Any]:
    requests = sum(statuses.values())
    return {
        "requests": requests,
        "connections": 8,
        "statuses": statuses,
        "applied": requests if applied is None else applied,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, **errors},
    }


def test_all_applied_2xx_answers_pass() -> None:
    assert check_answers("run", wrk_result({"200": 500})) == []


@pytest.mark.parametrize(
    ("result", "says"),
    [
        (wrk_result({"422": 500}), "500 of 500 answers are not 2xx"),
        (wrk_result({"200": 499, "502": 1}, applied=499), "1 of 500 answers are not 2xx"),
        (wrk_result({"200": 490, "409": 10}, applied=490), "'409': 10"),
        (wrk_result({"200": 500}, applied=450), "50 of 500 2xx answers did not apply"),
        (wrk_result({"200": 500}, timeout=3), "socket errors or timeouts {'timeout': 3}"),
        (wrk_result({"200": 500}, read=1), "socket errors or timeouts {'read': 1}"),
        (wrk_result({}), "no answer at all"),
    ],
)
def test_wrong_answers_fail(result: dict[str, Any], says: str) -> None:
    problems = check_answers("gateway keycom/sqlite rep 1", result)
    assert any(says in p for p in problems), problems
    assert all(p.startswith("gateway keycom/sqlite rep 1 (8 connection(s))") for p in problems)


def test_answers_not_seen_by_the_script_fail() -> None:
    result = wrk_result({"200": 500})
    result["requests"] = 510
    assert any("510 answers but 500 seen" in p for p in check_answers("run", result))


def upstream(counts: dict[str, int], applied: int = 100) -> list[str]:
    return check_upstream("run", counts, applied=applied, in_flight=8,
                          write_method="PUT", reads_per_change=2)


def test_the_intended_upstream_calls_pass() -> None:
    assert upstream({"GET": 200, "PUT": 100, "PATCH": 0}) == []
    assert upstream({"GET": 216, "PUT": 108}) == []  # 8 in flight when wrk stopped


@pytest.mark.parametrize(
    ("counts", "says"),
    [
        ({"GET": 198, "PUT": 99}, "99 upstream PUTs for 100 applied answers"),  # lost
        ({"GET": 218, "PUT": 109}, "109 upstream PUTs for 100 applied answers"),
        ({"GET": 100, "PUT": 100}, "100 upstream GETs for 100 writes; expected 2 per change"),
        ({"GET": 300, "PUT": 100}, "300 upstream GETs"),
        ({"GET": 200, "PUT": 100, "PATCH": 3}, "unexpected upstream writes {'PATCH': 3}"),
    ],
)
def test_other_upstream_calls_fail(counts: dict[str, int], says: str) -> None:
    assert any(says in p for p in upstream(counts)), upstream(counts)


def audit(kinds: dict[str, int], *, verified: int, ok: bool = True,
          unclosed: int = 0) -> dict[str, Any]:
    return {"chain_ok": ok, "entries_verified": verified, "entries_by_kind": kinds,
            "intents_without_one_outcome": unclosed, "outcomes_without_intent": 0}


def test_one_intent_and_one_outcome_per_write_pass() -> None:
    kinds = {"intent/update": 50, "outcome/update/applied": 50}
    assert check_audit("gw", audit(kinds, verified=100), writes=50) == []


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (audit({"intent/update": 50, "outcome/update/applied": 50}, verified=100, ok=False),
         "does not verify"),
        (audit({"intent/update": 50, "outcome/update/applied": 49}, verified=99, unclosed=1),
         "1 intents without exactly one outcome"),
        (audit({"intent/update": 50, "outcome/update/applied": 50,
                "outcome/update/rejected": 3}, verified=103), "audit entries"),
        (audit({"intent/update": 50, "outcome/update/unknown": 50}, verified=100),
         "expected {'intent/update': 50, 'outcome/update/applied': 50}"),
        (audit({"intent/update": 50, "outcome/update/applied": 50}, verified=90),
         "verify checked 90 entries, expected 100"),
    ],
)
def test_a_wrong_audit_log_fails(entry: dict[str, Any], says: str) -> None:
    problems = check_audit("gw", entry, writes=50)
    assert any(says in p for p in problems), problems


def test_the_docs_table_replaces_only_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Title\n\nbefore\n{DOCS_BEGIN}\nold table\n{DOCS_END}\nafter\n")
    update_docs(doc, "| new | table |\n")
    assert doc.read_text() == (
        f"# Title\n\nbefore\n{DOCS_BEGIN}\n| new | table |\n{DOCS_END}\nafter\n"
    )


def test_docs_without_the_markers_are_refused(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Title\n")
    with pytest.raises(ValueError, match=r"no .* section"):
        update_docs(doc, "| table |\n")
    assert doc.read_text() == "# Title\n"
