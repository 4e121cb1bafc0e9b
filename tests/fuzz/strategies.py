"""Hypothesis strategies derived from a loaded policy: valid patches and near misses.

A generated patch carries the labels of the near misses put into it: ``(path, code)``
for each value the policy must refuse with that field code (422 ``validation_failed``).
A patch without labels holds only values the policy's field table allows; whether the
gateway may apply it is then for the policy's rules (role, purpose, record state).

C0/C1 control characters are kept out of every generated string here: they are
refused by issue 8 item 9 (``test_control_characters_are_refused``), and tab, newline
and carriage return may be allowed by a policy that says so.

Values at and just past what the upstreams take are drawn on purpose: blank strings
(white space of any kind), strings one past ``max_length``, nulls for fields that may not
be null, array items too short or too long, dates in the other ISO 8601 forms (week,
ordinal, basic). The policies refuse them (422) since the fuzzer found them forwarded
and refused upstream (a 502 for client input; docs/reliability.md).
"""

from __future__ import annotations

import datetime as dt
import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from policies.compiled import CompiledPolicy, FieldSpec

Label = tuple[str, str]  # (field path, validation code)
Drawn = tuple[Any, list[Label]]

# What a valid string may hold: any code point but controls (Cc) and lone surrogates.
TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
# Controls no policy could want (tab, LF, CR left out: a policy may allow those).
CONTROLS: tuple[str, ...] = tuple(
    chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x80, 0xA0))
)
# White space that is not a control: what a blank value is made of, besides ""
SPACES = st.sampled_from(
    [" ", "\u00a0", "\u1680", *map(chr, range(0x2000, 0x200B)), "\u2028", "\u2029",
     "\u202f", "\u205f", "\u3000"]
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)  # JSON has no others
TEXT_CAP = 60  # longest plain string drawn when the policy sets no max_length
DEEP_MIN = 20  # a "deep" value nests at least this many arrays


@dataclass(frozen=True)
class Deep:
    """A value nested ``depth`` arrays deep, written by :func:`to_json` without recursion."""

    depth: int


@dataclass
class Generated:
    patch: dict[str, Any]
    labels: list[Label] = field(default_factory=list)
    deep: bool = False  # holds a Deep value: 400 malformed_json or 422, never a 2xx

    @property
    def valid(self) -> bool:
        return not self.labels and not self.deep


def to_json(value: Any) -> bytes:
    """JSON text of ``value``; a :class:`Deep` becomes ``[[[...]]]`` however deep it is."""
    deep: list[Deep] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Deep):
            deep.append(obj)
            return f"\x00deep{len(deep) - 1}\x00"
        raise TypeError(type(obj).__name__)

    text = json.dumps(value, default=default, ensure_ascii=False)
    for i, d in enumerate(deep):
        text = text.replace(json.dumps(f"\x00deep{i}\x00"), "[" * d.depth + "]" * d.depth)
    return text.encode("utf-8")


def has_deep(value: Any) -> bool:
    if isinstance(value, Deep):
        return True
    if isinstance(value, dict):
        return any(has_deep(v) for v in value.values())
    if isinstance(value, list):
        return any(has_deep(v) for v in value)
    return False


# -- valid values ----------------------------------------------------------------------


def _emails(max_length: int) -> st.SearchStrategy[str]:
    atom = st.text(string.ascii_letters + string.digits + "._%+-", min_size=1, max_size=20)
    label = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=15)
    tld = st.text(string.ascii_lowercase, min_size=2, max_size=6)
    local = atom | st.text(TEXT_CHARS.filter(lambda c: c != "@" and not c.isspace()),
                           min_size=1, max_size=12)
    return st.builds(lambda a, d, t: f"{a}@{d}.{t}", local, label, tld).filter(
        lambda s: len(s) <= max_length and "@" not in s.split("@", 1)[1]
    )


def _phones(max_length: int) -> st.SearchStrategy[str]:
    """What the phone format takes: an optional + and 4 to 32 digits and separators."""
    group = st.text(string.digits, min_size=1, max_size=8)
    return st.builds(
        lambda plus, first, groups, sep: plus + sep.join([first, *groups])[:32],
        st.sampled_from(["", "+"]),
        st.text(string.digits, min_size=4, max_size=6),  # a phone has at least 4 digits
        st.lists(group, max_size=5),
        st.sampled_from([" ", "-", "/", "."]),
    ).filter(lambda s: len(s) <= max_length)


def _formatted(fmt: str, max_length: int) -> st.SearchStrategy[str]:
    if fmt == "email":
        return _emails(max_length)
    if fmt == "phone":
        return _phones(max_length)
    if fmt == "country_code":
        return st.from_regex(r"[A-Z]{2,3}", fullmatch=True)
    if fmt == "date":
        return DATES
    raise AssertionError(f"a format the fuzzer does not know: {fmt}")


def _strings(spec: FieldSpec) -> st.SearchStrategy[str]:
    lo = spec.min_length or 0
    hi = spec.max_length if spec.max_length is not None else TEXT_CAP
    if spec.enum is not None:
        return st.sampled_from([v for v in spec.enum if isinstance(v, str)])
    if spec.pattern is not None:
        pattern, refused = spec.pattern, spec.refused
        return st.from_regex(pattern, fullmatch=True, alphabet=TEXT_CHARS).filter(
            lambda s: lo <= len(s) <= hi and refused.search(s) is None
        )
    if spec.format is not None:
        formatted = _formatted(spec.format, hi)
        return formatted | st.just("") if lo == 0 and not spec.required else formatted
    plain = st.text(TEXT_CHARS, min_size=lo, max_size=min(hi, TEXT_CAP))
    if spec.max_length is not None:
        # the boundary itself, whatever TEXT_CAP says
        plain = plain | st.text(TEXT_CHARS, min_size=hi, max_size=hi)
    else:
        # no limit in the policy: now and then a long value probes the upstream's
        long = st.builds(lambda c, n: c * n, TEXT_CHARS, st.integers(TEXT_CAP, 4100))
        short = plain
        plain = st.integers(0, 7).flatmap(lambda k: long if k == 0 else short)
    return plain


#: what the date type and format take (docs/policies.md)
DATES = st.dates().map(lambda d: d.isoformat())
#: UTC offsets in whole minutes (ISO 8601 has no seconds in an offset; Python has)
OFFSETS = st.none() | st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m)))
#: what the datetime type takes: YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM] (docs/policies.md)
DATETIMES = st.builds(
    lambda moment, offset, spec: moment.replace(tzinfo=offset).isoformat(timespec=spec),
    st.datetimes(), OFFSETS, st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)


#: integers every JSON parser reads alike (RFC 7493); beyond them the policy says wrong_type
SAFE_INTEGERS = st.integers(-(2**53 - 1), 2**53 - 1)


def valid_value(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """A value the field table allows (not null)."""
    t = spec.type
    if t == "string":
        return _strings(spec)
    if t == "integer":
        return st.sampled_from(spec.enum) if spec.enum is not None else SAFE_INTEGERS
    if t == "number":
        if spec.enum is not None:
            return st.sampled_from(spec.enum)
        return SAFE_INTEGERS | FINITE
    if t == "boolean":
        return st.booleans()
    if t == "date":
        return DATES
    if t == "datetime":
        return DATETIMES
    if t == "object":
        children = spec.children or {}
        return st.fixed_dictionaries(
            {}, optional={k: valid_or_null(s) for k, s in children.items() if not s.read_only},
        )
    if t == "array":
        lo = spec.min_items or 0
        hi = spec.max_items if spec.max_items is not None else max(lo, 3)
        item = valid_value(spec.items) if spec.items is not None else st.none()
        return st.lists(item, min_size=lo, max_size=hi)
    raise AssertionError(f"a type the fuzzer does not know: {t}")


def valid_or_null(spec: FieldSpec) -> st.SearchStrategy[Any]:
    value = valid_value(spec)
    return value if spec.required else value | st.none()


# -- near misses -----------------------------------------------------------------------

_ANY_SCALAR = st.none() | st.booleans() | st.integers() | st.text(TEXT_CHARS, max_size=8)
_SMALL_JSON = st.recursive(
    _ANY_SCALAR,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(TEXT_CHARS, max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _wrong_type(spec: FieldSpec) -> st.SearchStrategy[Any]:
    containers = st.lists(_ANY_SCALAR, max_size=3) | st.dictionaries(
        st.text(TEXT_CHARS, max_size=6), _ANY_SCALAR, max_size=3
    )
    t = spec.type
    if t in ("string", "date", "datetime"):
        return st.booleans() | st.integers() | FINITE | containers
    if t == "integer":
        return (
            st.booleans()
            | FINITE.filter(lambda f: not f.is_integer())  # 2.0 is the integer 2 (JSON Schema)
            | st.integers().map(str)
            | containers
        )
    if t == "number":
        return st.booleans() | st.text(TEXT_CHARS, max_size=8) | containers
    if t == "boolean":
        return st.integers() | st.sampled_from(["true", "false", "1", "0", ""]) | containers
    if t == "object":
        return st.booleans() | st.integers() | st.text(TEXT_CHARS, max_size=8) | st.lists(
            _ANY_SCALAR, max_size=3
        )
    return st.booleans() | st.integers() | st.text(TEXT_CHARS, max_size=8) | st.dictionaries(
        st.text(TEXT_CHARS, max_size=6), _ANY_SCALAR, max_size=3
    )


def _bad_format(fmt: str) -> st.SearchStrategy[str]:
    if fmt == "email":
        return st.text(TEXT_CHARS.filter(lambda c: c != "@"), min_size=1, max_size=30)
    if fmt == "phone":
        return st.builds(lambda d, x: d + x, st.text(string.digits, max_size=6),
                         st.text(string.ascii_letters + "#*_", min_size=1, max_size=6))
    if fmt == "country_code":
        return st.sampled_from(["de", "D", "DEUT", "1A", "d e"])
    return st.sampled_from(["2024-13-01", "2024-02-30", "01.02.2024", "yesterday", "2024-1-1",
                            *OTHER_ISO_DATES])


#: dates in ISO 8601 forms other than YYYY-MM-DD, which Python's fromisoformat takes
OTHER_ISO_DATES = ["2024-W01-1", "2024W011", "2024-W01", "2024-001", "20240101",
                   "2024-01-01T10:00:00", "2024-01-01 10:00"]


def _bad_date(t: str) -> st.SearchStrategy[str]:
    bad = ["2024-13-01", "2024-02-30", "yesterday", "2024-01-01T25:00:00"]
    if t == "date":
        bad += OTHER_ISO_DATES
    else:
        bad += ["2024-01-01", "2024-W01-1T10:00:00", "20240101T100000", "2024-01-01 10:00:00",
                "2024-01-01T10:00", "2024-01-01T10:00:00,5", "2024-01-01T10:00:00+0530",
                "2024-01-01T10:00:00+05:30:15"]
    return st.sampled_from(bad)


def near_miss(spec: FieldSpec, path: str) -> st.SearchStrategy[Drawn]:
    """A value of ``spec`` at ``path`` that validation must refuse, with its labels."""
    if spec.read_only:
        return (valid_value(spec) | _ANY_SCALAR).map(lambda v: (v, [(path, "read_only")]))
    options: list[st.SearchStrategy[Drawn]] = [
        _wrong_type(spec).map(lambda v: (v, [(path, "wrong_type")]))
    ]
    if spec.required:
        options.append(st.just((None, [(path, "required")])))
    t = spec.type
    if t == "string":
        options += _string_misses(spec, path)
    elif t in ("integer", "number") and spec.enum is not None:
        enum = spec.enum
        options.append(st.integers().filter(lambda v: v not in enum).map(
            lambda v: (v, [(path, "not_in_enum")])))
    elif t in ("date", "datetime"):
        options.append(_bad_date(t).map(lambda v: (v, [(path, "invalid_format")])))
    elif t == "object" and spec.children:
        options.append(_object_with_miss(spec.children, path + "."))
    elif t == "array":
        options += _array_misses(spec, path)
    return st.one_of(options)


def _string_misses(spec: FieldSpec, path: str) -> list[st.SearchStrategy[Drawn]]:
    out: list[st.SearchStrategy[Drawn]] = []
    if spec.max_length is not None:
        n = spec.max_length
        out.append(st.text(TEXT_CHARS, min_size=n + 1, max_size=n + 40).map(
            lambda v: (v, [(path, "too_long")])))
    hi = spec.max_length if spec.max_length is not None else TEXT_CAP
    if spec.min_length:
        out.append(st.text(TEXT_CHARS, max_size=spec.min_length - 1).map(
            lambda v: (v, [(path, "too_short")])))
    if spec.enum is not None:
        enum = spec.enum
        out.append(st.text(TEXT_CHARS, min_size=spec.min_length or 0, max_size=hi)
                   .filter(lambda v: v not in enum).map(lambda v: (v, [(path, "not_in_enum")])))
    elif spec.pattern is not None:
        pattern, lo = spec.pattern, spec.min_length or 0
        # white space alone too: what a not-blank pattern ('.*\S.*') refuses
        out.append((st.text(TEXT_CHARS, min_size=lo, max_size=hi)
                    | st.text(SPACES, min_size=lo, max_size=max(lo, min(hi, 8))))
                   .filter(lambda v: pattern.fullmatch(v) is None)
                   .map(lambda v: (v, [(path, "pattern_mismatch")])))
    elif spec.format is not None:
        out.append(_bad_format(spec.format).filter(lambda v: len(v) <= hi).map(
            lambda v: (v, [(path, "invalid_format")])))
    return out


def _array_misses(spec: FieldSpec, path: str) -> list[st.SearchStrategy[Drawn]]:
    out: list[st.SearchStrategy[Drawn]] = []
    item = spec.items
    if spec.max_items is not None and item is not None:
        n = spec.max_items
        out.append(st.lists(valid_value(item), min_size=n + 1, max_size=n + 3).map(
            lambda v: (v, [(path, "too_long")])))
    if item is not None:
        @st.composite
        def bad_item(draw: st.DrawFn) -> Drawn:
            hi = spec.max_items if spec.max_items is not None else 3
            good = draw(st.lists(valid_value(item), max_size=max(hi - 1, 0)))
            i = draw(st.integers(0, len(good)))
            item_path = f"{path}[{i}]"
            bad, labels = draw(
                st.just((None, [(item_path, "wrong_type")])) | near_miss(item, item_path)
            )
            return [*good[:i], bad, *good[i:]], labels

        out.append(bad_item())
    return out


def _unknown_key(known: dict[str, FieldSpec]) -> st.SearchStrategy[str]:
    return st.text(TEXT_CHARS, max_size=12).filter(lambda k: k not in known)


def _object_with_miss(children: dict[str, FieldSpec], prefix: str) -> st.SearchStrategy[Drawn]:
    """An object whose members are valid but one (or an unknown key)."""

    @st.composite
    def build(draw: st.DrawFn) -> Drawn:
        writable = {k: s for k, s in children.items() if not s.read_only}
        obj: dict[str, Any] = draw(
            st.fixed_dictionaries({}, optional={k: valid_or_null(s) for k, s in writable.items()})
        )
        if draw(st.booleans()):
            key = draw(_unknown_key(children))
            obj[key] = draw(_SMALL_JSON)
            return obj, [(prefix + key, "unknown_field")]
        name = draw(st.sampled_from(sorted(children)))
        value, labels = draw(near_miss(children[name], prefix + name))
        obj[name] = value
        return obj, labels

    return build()


# -- whole patches ---------------------------------------------------------------------


@st.composite
def patches(
    draw: st.DrawFn, policy: CompiledPolicy, unread: tuple[str, ...] = (),
) -> Generated:
    """A merge patch for ``policy``: a few valid fields, and often one or two near misses.

    ``unread``: the fields a whole-object update needs and the gateway cannot read (it
    refuses 409 ``would_clear_unknown_fields`` without them); half the patches give all.
    """
    fields = policy.fields
    writable = sorted(k for k, s in fields.items() if not s.read_only)
    chosen = draw(st.lists(st.sampled_from(writable), max_size=4, unique=True))
    if unread and draw(st.booleans()):
        chosen = [*chosen, *(name for name in unread if name not in chosen)]
    patch: dict[str, Any] = {name: draw(valid_or_null(fields[name])) for name in chosen}
    labels: dict[str, list[Label]] = {}  # by top-level key: a key drawn twice keeps the last
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        kind = draw(st.sampled_from(["field", "field", "field", "unknown", "deep"]))
        if kind == "unknown":
            key = draw(_unknown_key(fields))
            patch[key] = draw(_SMALL_JSON)
            labels[key] = [(key, "unknown_field")]
        elif kind == "deep":
            key = draw(st.sampled_from(sorted(fields)) | _unknown_key(fields))
            patch[key] = Deep(draw(st.integers(DEEP_MIN, 3000)))
            labels[key] = []
        else:
            key = draw(st.sampled_from(sorted(fields)))
            patch[key], labels[key] = draw(near_miss(fields[key], key))
    return Generated(patch, [lab for key in labels for lab in labels[key]], has_deep(patch))
