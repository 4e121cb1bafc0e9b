"""The OpenAPI document the gateway serves: service/openapi.yaml plus the loaded policies.

The hand-written document (``service/openapi.yaml``) describes every route once, with the
customer routes as one template, ``/v1/systems/{system}/customers/{customer_id}``, whose
PATCH body is any object. The served document replaces that template with one path per
loaded system (``/v1/systems/keycom/customers/{customer_id}``), whose PATCH body is the
system's own ``<System>Patch`` schema and whose answers carry ``<System>Record``, both
generated here from the policy's field table:

* ``<System>Patch``: every field with its JSON type, length, enum, pattern and format as
  the validator (``policies/validate.py``) checks them; ``readOnly`` fields; ``null``
  allowed unless the field is ``required``; nested objects and arrays;
  ``additionalProperties: false`` at every level (an unknown field is 422).
* ``<System>Record``: the record as a caller sees it. A field some role sees masked may
  read a string (a pseudonym, a partial or redacted text) or ``null`` whatever its type,
  so its schema allows those; upstream records may hold fields the policy does not name
  (shown masked), so a record is an open object.

The document is built when the policy set in force changes (start, reload) and cached as
YAML and JSON bytes with an ``ETag`` (:class:`OpenApiCache`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import yaml

from common.vocabulary import Purpose, Role
from policies.compiled import CompiledPolicy, FieldSpec
from policies.loader import PolicySet
from policies.validate import COUNTRY, DATETIME, EMAIL, MAX_SAFE_INTEGER, PHONE

TEMPLATE: Final = "/v1/systems/{system}/customers/{customer_id}"
# YYYY-MM-DD of a day that exists (``date.fromisoformat`` accepts it), leap years too
_DAY: Final = (
    "(?:(?!0000)[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29)"
)
# a string the format check accepts, as a pattern (empty: the format is not checked)
_FORMAT_PATTERNS: Final[Mapping[str, str]] = {
    "email": EMAIL.pattern,
    "phone": f"(?=(?:[^0-9]*[0-9]){{4}}){PHONE.pattern}",
    "country_code": COUNTRY.pattern,
    "date": _DAY,
}


def load_base() -> dict[str, Any]:
    """The hand-written document, parsed."""
    text = resources.files("service").joinpath("openapi.yaml").read_text(encoding="utf-8")
    base = yaml.safe_load(text)
    assert isinstance(base, dict)
    return base


def schema_name(system: str) -> str:
    """``keycom`` -> ``Keycom``: the prefix of a system's component names."""
    return "".join(part[:1].upper() + part[1:] for part in system.replace("-", "_").split("_"))


# -- the PATCH body --------------------------------------------------------------------------


def _no_controls(spec: FieldSpec) -> str:
    """A character class of everything the field's refused-character check lets
    through, read off the check itself (the C0/C1 controls and DEL; the unpaired
    surrogates it refuses too have no spelling in most regex dialects and are left out)."""
    refused = [c for c in range(0xA0) if spec.refused.search(chr(c))]
    ranges: list[list[int]] = []
    for c in refused:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    text = "".join(
        f"\\x{a:02x}" if a == b else f"\\x{a:02x}-\\x{b:02x}" for a, b in ranges
    )
    return f"[^{text}]"


def _string_pattern(spec: FieldSpec) -> str:
    """One anchored pattern for every check of a string: no refused control character,
    the policy's own pattern (a full match), the format (an empty string skips it)."""
    chars = _no_controls(spec)
    if spec.pattern_text is None and (spec.format or "") not in _FORMAT_PATTERNS:
        return f"^{chars}*$"
    parts = [f"^(?={chars}*$)"]
    if spec.pattern_text is not None:
        parts.append(f"(?=(?:{spec.pattern_text})$)")
    shape = _FORMAT_PATTERNS.get(spec.format or "")
    if shape is not None:
        parts.append(f"(?:|{shape})$")
    else:
        parts.append("[\\s\\S]*$")
    return "".join(parts)


def _nullable(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    if not nullable:
        return schema
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    return schema


def patch_field(spec: FieldSpec, *, in_array: bool = False) -> dict[str, Any]:
    """The request schema of one field, as ``validate_patch`` checks a value of it."""
    out: dict[str, Any] = {}
    t = spec.type
    if t == "string":
        out["type"] = "string"
        for key, name in (("maxLength", "max_length"), ("minLength", "min_length")):
            if getattr(spec, name) is not None:
                out[key] = getattr(spec, name)
        if spec.format == "email":  # the format check takes at most 254 characters
            out["maxLength"] = min(out.get("maxLength", 254), 254)
        if spec.enum is not None:
            out["enum"] = list(spec.enum)  # the enum is checked, the pattern then is not
        else:
            out["pattern"] = _string_pattern(spec)
            if spec.format is not None:
                # the pattern holds the check; an empty string passes it, so this is not
                # JSON Schema's `format` (which would refuse "")
                out["x-format"] = spec.format
    elif t in ("integer", "number"):
        out["type"] = t
        if spec.enum is not None:
            out["enum"] = list(spec.enum)
        elif t == "integer":
            out.update(minimum=-MAX_SAFE_INTEGER, maximum=MAX_SAFE_INTEGER)
    elif t == "boolean":
        out["type"] = "boolean"
    elif t == "date":
        out.update(type="string", format="date", pattern=f"^{_DAY}$")
    elif t == "datetime":
        out.update(type="string", format="date-time", pattern=f"^{DATETIME.pattern}$")
    elif t == "object":
        out["type"] = "object"
        if spec.children is not None:
            out["properties"] = {k: patch_field(c) for k, c in spec.children.items()}
            out["additionalProperties"] = False
    elif t == "array":
        out["type"] = "array"
        if spec.min_items is not None:
            out["minItems"] = spec.min_items
        if spec.max_items is not None:
            out["maxItems"] = spec.max_items
        if spec.items is not None:
            out["items"] = patch_field(spec.items, in_array=True)
    if spec.description:
        out["description"] = spec.description
    if spec.read_only:
        out["readOnly"] = True
    # an array item is never null; a field is, unless the upstream needs a value
    return _nullable(out, not in_array and not spec.required)


def patch_schema(policy: CompiledPolicy) -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            f"A JSON merge patch (RFC 7396) of a {policy.system} record, from its policy "
            f"(version {policy.version[:12]}): `null` removes a field (not allowed for a "
            "required one); `readOnly` fields and unknown fields are refused (422)."
        ),
        "properties": {name: patch_field(spec) for name, spec in policy.fields.items()},
        "additionalProperties": False,
    }


# -- the record in answers -----------------------------------------------------------------

_JSON_TYPE: Final[Mapping[str, str]] = {
    "string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
    "date": "string", "datetime": "string", "object": "object", "array": "array",
}


def _maskable(policy: CompiledPolicy, spec: FieldSpec, raised: set[str]) -> bool:
    """Whether some role may see this field other than in clear: a role the policy does
    not name sees nothing in clear, a record-state rule may raise the field."""
    if spec.path in raised:
        return True
    for role in Role:
        row = policy.masking.get(role)
        if row is None:
            return True
        ref = row.get(spec.sensitivity)
        if ref is None or ref.name != "clear":
            return True
    return False


def record_field(policy: CompiledPolicy, spec: FieldSpec, raised: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = _JSON_TYPE[spec.type]
    if spec.children is not None:
        out = {"type": ["object", "null"], "properties": {
            k: record_field(policy, c, raised) for k, c in spec.children.items()
        }}
    elif spec.items is not None:
        out = {"type": ["array", "null"], "items": record_field(policy, spec.items, raised)}
    elif _maskable(policy, spec, raised):
        types = [kind] if kind == "string" else [kind, "string"]
        out = {"type": [*types, "null"], "description": "Masked for some roles: then a "
               "string (pseudonym, partial or redacted text) or null, whatever the type."}
    else:
        out = {"type": [kind, "null"]}
    if spec.read_only:
        out["readOnly"] = True
    return out


def record_schema(policy: CompiledPolicy) -> dict[str, Any]:
    raised = {row["path"] for row in policy.field_table() if row.get("raised_by_rules")}
    return {
        "type": "object",
        "description": (
            f"A {policy.system} record as the caller's roles see it. Fields the policy "
            "does not name may appear (masked)."
        ),
        "properties": {
            name: record_field(policy, spec, raised) for name, spec in policy.fields.items()
        },
        "additionalProperties": True,
    }


# -- the document --------------------------------------------------------------------------


def _with_customer(base: dict[str, Any], record_ref: str, system: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out["properties"]["customer"] = {"$ref": record_ref}
    out["properties"]["system"] = {"type": "string", "const": system}
    return out


def _system_paths(spec: dict[str, Any], policy: CompiledPolicy) -> dict[str, Any]:
    """The template's path item, made concrete for one system."""
    system, name = policy.system, schema_name(policy.system)
    schemas = spec["components"]["schemas"]
    ref = f"#/components/schemas/{name}Record"
    schemas[f"{name}Patch"] = patch_schema(policy)
    schemas[f"{name}Record"] = record_schema(policy)
    schemas[f"{name}CustomerRead"] = _with_customer(schemas["CustomerRead"], ref, system)
    schemas[f"{name}UpdateResult"] = _with_customer(schemas["UpdateResult"], ref, system)
    item: dict[str, Any] = copy.deepcopy(spec["paths"][TEMPLATE])
    item["parameters"] = [p for p in item["parameters"]
                          if p != {"$ref": "#/components/parameters/System"}]
    for method, what in (("get", "CustomerRead"), ("patch", "UpdateResult")):
        op = item[method]
        op["operationId"] = f"{method}_{system}_customer"
        op["tags"] = [*op.get("tags", []), system]
        ok = op["responses"]["200"]["content"]["application/json"]
        ok["schema"] = {"$ref": f"#/components/schemas/{name}{what}"}
        op["x-template"] = TEMPLATE
    patch = item["patch"]
    patch["summary"] = f"Partial update of a {system} customer (JSON merge patch)"
    body = {"$ref": f"#/components/schemas/{name}Patch"}
    for media in patch["requestBody"]["content"].values():
        media["schema"] = body
    patch["parameters"] = [
        _purpose_required() if p == {"$ref": "#/components/parameters/XPurpose"} else p
        for p in patch["parameters"]
    ]
    return item


def _purpose_required() -> dict[str, Any]:
    return {
        "name": "X-Purpose", "in": "header", "required": True,
        "description": "Why the change is made; the policy says which purposes may change "
                       "which fields (403 `purpose_required` without one, "
                       "`purpose_not_allowed` for another).",
        "schema": {"type": "string", "enum": [p.value for p in Purpose]},
    }


def build(base: Mapping[str, Any], policies: PolicySet) -> dict[str, Any]:
    """The served document: ``base`` with the customer template replaced by one path per
    system of ``policies`` and their schemas."""
    spec = copy.deepcopy(dict(base))
    paths: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        if path != TEMPLATE:
            paths[path] = item
            continue
        for system in policies.systems:
            concrete = TEMPLATE.replace("{system}", system)
            paths[concrete] = _system_paths(spec, policies[system])
    spec["paths"] = paths
    spec["info"]["x-policy-versions"] = dict(sorted(policies.versions().items()))
    spec["tags"] = [*spec.get("tags", []), *(
        {"name": s, "description": f"The {s} customer routes (from its policy)."}
        for s in policies.systems
    )]
    return spec


@dataclass(frozen=True, slots=True)
class Rendered:
    yaml: bytes
    json: bytes
    etag: str


def render(spec: Mapping[str, Any]) -> Rendered:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when there: 5x faster
    as_yaml = yaml.dump(dict(spec), Dumper=dumper, sort_keys=False, allow_unicode=True).encode()
    as_json = json.dumps(spec, ensure_ascii=False, indent=1).encode()
    digest = hashlib.sha256(as_json).hexdigest()[:32]
    return Rendered(as_yaml, as_json, f'"{digest}"')


class OpenApiCache:
    """The served document for the policy set in force, built once per set."""

    def __init__(self, base: Mapping[str, Any] | None = None) -> None:
        self._base = base if base is not None else load_base()
        self._key: tuple[tuple[str, str], ...] | None = None
        self._rendered: Rendered | None = None
        self._lock = threading.Lock()

    def fresh(self, policies: PolicySet) -> Rendered | None:
        """The cached document if it is the one of ``policies``, else None (build it with
        :meth:`get`, in a thread: it takes a moment)."""
        key = tuple(sorted(policies.versions().items()))
        rendered = self._rendered
        return rendered if rendered is not None and key == self._key else None

    def get(self, policies: PolicySet) -> Rendered:
        key = tuple(sorted(policies.versions().items()))
        with self._lock:
            if self._rendered is None or key != self._key:
                self._rendered = render(build(self._base, policies))
                self._key = key
            return self._rendered
