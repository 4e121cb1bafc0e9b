"""Control characters in strings: refused everywhere unless a policy opens a field to them.

NUL, the C0 controls, DEL and the C1 controls (Unicode category Cc), and unpaired
surrogates, are ``invalid_format`` in every string of every shipped policy - top-level,
nested in objects, inside arrays - except the characters a field's ``allow_controls``
names (``tab``, ``newline``). NUL and the others can never be allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import PolicyEngine, PolicyLoadError, PolicySet, load_policy_set
from policies.compiled import FieldSpec
from policies.loader import CATALOG
from tests.policies.test_loader import _broken

C0 = [chr(c) for c in range(0x00, 0x20)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
REFUSED_ALWAYS = [c for c in C0 if c not in "\t\n\r"] + ["\x7f", *C1, "\ud800", "\udfff"]
LINE_CONTROLS = ["\t", "\n", "\r"]


def _patch_for(path: str, spec: FieldSpec, text: str) -> dict[str, Any]:
    """A patch that puts ``text`` at ``path`` (``A.B``, ``A[].B``, ``A[]``)."""
    value: Any = text
    parts = path.replace("[]", ".[]").split(".")
    for part in reversed(parts[1:]):
        value = [value] if part == "[]" else {part: value}
    return {parts[0]: value}


def writable_strings(policy_set: PolicySet) -> list[tuple[str, str, FieldSpec]]:
    found = []
    for system in policy_set.systems:
        for spec in policy_set[system].walk():
            if spec.type == "string" and not spec.read_only and not _under_read_only(
                policy_set, system, spec.path
            ):
                found.append((system, spec.path, spec))
    return found


def _under_read_only(policy_set: PolicySet, system: str, path: str) -> bool:
    policy = policy_set[system]
    parts = path.replace("[]", "").split(".")
    return any(
        (spec := policy.spec_for(".".join(parts[:i]))) is not None and spec.read_only
        for i in range(1, len(parts))
    )


SHIPPED = load_policy_set()
STRINGS = writable_strings(SHIPPED)


def _ok_text(spec: FieldSpec) -> str:
    """A value of the field that passes every other check, to embed a control in."""
    if spec.enum is not None:
        return str(spec.enum[0])
    if spec.format == "email":
        return "a@example.org"
    if spec.format == "phone":
        return "+49 30 1234"
    if spec.format == "country_code":
        return "DE"
    if spec.format == "date":
        return "2024-01-02"
    return "ab"


def test_the_walk_finds_nested_and_array_strings() -> None:
    paths = {(s, p) for s, p, _ in STRINGS}
    assert ("sedona", "CustomerBillPrimary.Address1") in paths
    assert ("keycom", "sms_numbers[]") in paths
    assert ("billbee", "MetaData[].Value") in paths
    assert len(STRINGS) > 60


@pytest.mark.parametrize(
    ("system", "path", "spec"), STRINGS, ids=[f"{s}:{p}" for s, p, _ in STRINGS]
)
def test_every_string_field_refuses_nul_and_escape(
    engine: PolicyEngine, system: str, path: str, spec: FieldSpec
) -> None:
    for bad in ("\x00", "\x1b", "\x85", "\ud800"):
        patch = _patch_for(path, spec, _ok_text(spec) + bad)
        errors = engine.validate(system, patch)
        assert [e.code for e in errors] == ["invalid_format"], (path, repr(bad), errors)
        assert bad not in errors[0].message
    assert engine.validate(system, _patch_for(path, spec, _ok_text(spec))) == []


def test_the_reported_probe_is_refused(engine: PolicyEngine) -> None:
    for email in ("probe\x00x@example.org", "probe\x1bx@example.org"):
        errors = engine.validate("billbee", {"Email": email})
        assert [(e.path, e.code) for e in errors] == [("Email", "invalid_format")]


@pytest.mark.parametrize("bad", REFUSED_ALWAYS, ids=[f"U+{ord(c):04X}" for c in REFUSED_ALWAYS])
def test_each_control_is_refused_even_in_the_free_text_note(engine: PolicyEngine, bad: str) -> None:
    errors = engine.validate("keycom", {"note": f"line{bad}more"})
    assert [(e.path, e.code) for e in errors] == [("note", "invalid_format")]


def test_the_keycom_note_takes_lines_and_tabs(engine: PolicyEngine) -> None:
    assert engine.validate("keycom", {"note": "first\nsecond\r\nthird\tcolumn"}) == []
    # ... and nothing else does: an address line stays one line
    for line_control in LINE_CONTROLS:
        errors = engine.validate("keycom", {"name": f"a{line_control}b"})
        assert [e.code for e in errors] == ["invalid_format"]


def test_the_policy_table_shows_what_a_field_allows(policy_set: PolicySet) -> None:
    rows = {r["path"]: r for r in policy_set["keycom"].field_table()}
    assert rows["note"]["constraints"]["allow_controls"] == ["newline", "tab"]
    assert "allow_controls" not in rows["name"]["constraints"]


@given(
    st.text(max_size=20),
    st.sampled_from(REFUSED_ALWAYS + LINE_CONTROLS),
    st.text(max_size=20),
)
def test_any_string_with_a_control_is_refused(
    engine: PolicyEngine, head: str, bad: str, tail: str
) -> None:
    errors = engine.validate("sedona", {"CustomerName": head + bad + tail})
    codes = [e.code for e in errors]
    assert codes == ["invalid_format"]


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "Zs", "S"]), max_size=60))
def test_printable_text_is_never_refused_for_its_characters(
    engine: PolicyEngine, text: str
) -> None:
    # CustomerName2: a plain string of 60 (CustomerName itself may not be blank)
    assert engine.validate("sedona", {"CustomerName2": text}) == []


# ---- the policy key is checked at load, with file:line ----------------------------------

KEYCOM = "keycom.yaml"


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ("    allow_controls: [newline, bell]",
         "fields.note.allow_controls[1]: unknown control 'bell' (valid: newline, tab)"),
        ("    allow_controls: newline",
         "fields.note.allow_controls: expected a list of controls, got 'newline'"),
        ("    allow_controls: [nul]",
         "fields.note.allow_controls[0]: unknown control 'nul' (valid: newline, tab)"),
    ],
)
def test_a_bad_allow_controls_names_file_line_and_key(
    tmp_path: Path, new: str, expected: str
) -> None:
    text = (CATALOG / KEYCOM).read_text(encoding="utf-8")
    shipped = "    allow_controls: [newline, tab]"
    assert shipped in text
    path, line = _broken(tmp_path, KEYCOM, shipped, new)
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_set([path])
    assert any(e.startswith(f"{KEYCOM}:{line} {expected}") for e in exc.value.errors), (
        exc.value.errors
    )


def test_allow_controls_is_for_strings_only(tmp_path: Path) -> None:
    old = '    description: "Water database id"\n'
    path, line = _broken(tmp_path, KEYCOM, old, old + "    allow_controls: [tab]\n")
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_set([path])
    wanted = f"{KEYCOM}:{line} fields.water_database_id.allow_controls: only for type string"
    assert any(e.startswith(wanted) for e in exc.value.errors), exc.value.errors
