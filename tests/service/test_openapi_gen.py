"""The served OpenAPI document (service/openapi_gen.py) agrees with the policies and the code.

The per-system PATCH schemas are held against the validator itself: a patch the schema
accepts is one ``validate_patch`` accepts and the other way round, over patches the
policy fuzzer's strategies draw (valid fields, near misses, unknown keys). The generated
routes are compared with what the app mounts; a reload changes the served document.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from common.vocabulary import Problem
from policies import load_policy_set
from policies.loader import PolicySet, policy_files
from policies.validate import validate_patch
from service.openapi_gen import TEMPLATE, OpenApiCache, build, load_base, schema_name
from service.registry import SYSTEMS
from tests.fuzz.strategies import patches
from tests.service.configmap import catalog, note_read_only, write_configmap
from tests.service.conftest import Stack
from tests.service.test_openapi import (
    HTTP_METHODS,
    app,  # noqa: F401 - the fixture
    compare,
    documented_routes,
    mounted_routes,
    operations,
    problem_codes,
)
from tests.service.test_openapi import (
    catalog as problem_catalog,
)
from tests.service.test_reload import mounted, until  # noqa: F401 - the fixture
from tests.values import leaves

TOY = Path(__file__).with_name("toy") / "toyshop.yaml"


@functools.cache
def _shipped() -> PolicySet:
    return load_policy_set(None)


@functools.cache
def _spec() -> dict[str, Any]:
    return build(load_base(), _shipped())


@pytest.fixture
def shipped() -> PolicySet:
    return _shipped()


@pytest.fixture
def spec() -> dict[str, Any]:
    return _spec()


def test_the_generated_document_is_a_valid_openapi_3_1_document(spec: dict[str, Any]) -> None:
    validate(json.loads(json.dumps(spec)))
    toy = load_policy_set([*policy_files(None), TOY])
    validate(json.loads(json.dumps(build(load_base(), toy))))
    assert spec["info"]["x-policy-versions"] == load_policy_set(None).versions()


def test_every_mounted_route_is_in_the_served_document(app: Any, spec: dict[str, Any]) -> None:  # noqa: F811
    """A per-system path stands for the template the app mounts; nothing else moved."""
    concrete = {f"/v1/systems/{s}/customers/{{customer_id}}" for s in SYSTEMS}
    routes = set()
    for method, path in documented_routes(spec):
        if path in concrete:
            assert spec["paths"][path][method.lower()]["x-template"] == TEMPLATE
            path = TEMPLATE
        routes.add((method, path))
    assert compare(routes, mounted_routes(app)) == (set(), set())
    assert concrete <= set(spec["paths"]) and TEMPLATE not in spec["paths"]
    ids = [op["operationId"] for _route, op in operations(spec)]
    assert len(ids) == len(set(ids))  # a generator names a method after each


def test_every_problem_code_of_the_code_is_in_the_served_document(spec: dict[str, Any]) -> None:
    """Read from the vocabulary (service/errors.py raises only its codes): a code added
    there and not to the document fails here."""
    assert set(problem_codes(spec)) == set(problem_catalog(spec)) == {p.value for p in Problem}
    for route, op in operations(spec):
        assert set(op["x-problem-codes"]) <= set(problem_catalog(spec)), route


def test_the_review_page_and_the_probes_are_public(spec: dict[str, Any]) -> None:
    for path in ("/ui", "/ui/", "/ui/{asset}", "/healthz", "/readyz", "/metrics",
                 "/openapi.yaml", "/openapi.json"):
        assert spec["paths"][path]["get"]["security"] == [], path
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item and not path.startswith(("/ui", "/openapi", "/healthz",
                                                       "/readyz", "/metrics")):
                assert "security" not in item[method], (path, method)  # the bearer token


def _walk(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema]
    for child in schema.get("properties", {}).values():
        found.extend(_walk(child))
    if isinstance(schema.get("items"), dict):
        found.extend(_walk(schema["items"]))
    return found


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_patch_schema_names_every_field_with_its_flags(
    spec: dict[str, Any], shipped: PolicySet, system: str
) -> None:
    policy = shipped[system]
    schemas = spec["components"]["schemas"]
    patch = schemas[f"{schema_name(system)}Patch"]
    assert set(patch["properties"]) == set(policy.fields)
    for node in _walk(patch):
        if "object" in node.get("type", []) and "properties" in node:
            assert node["additionalProperties"] is False
    for name, field in policy.fields.items():
        prop = patch["properties"][name]
        assert prop.get("readOnly", False) == field.read_only, name
        assert ("null" in prop.get("type", [])) == (not field.required), name
        if field.max_length is not None:
            assert prop["maxLength"] <= field.max_length, name
    op = spec["paths"][f"/v1/systems/{system}/customers/{{customer_id}}"]["patch"]
    ref = {"$ref": f"#/components/schemas/{schema_name(system)}Patch"}
    assert all(m["schema"] == ref for m in op["requestBody"]["content"].values())
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    record = schemas[answer.rsplit("/", 1)[-1]]["properties"]["customer"]["$ref"]
    assert record.endswith(f"/{schema_name(system)}Record")


def _writable(schema: dict[str, Any]) -> dict[str, Any]:
    """The request schema as a client must read it: readOnly members are not to be sent
    (with ``additionalProperties: false`` they are then refused, as the gateway does)."""
    out = copy.deepcopy(schema)
    for node in _walk(out):
        props = node.get("properties")
        if props is not None:
            node["properties"] = {k: v for k, v in props.items() if not v.get("readOnly")}
    return out


@pytest.mark.parametrize("system", SYSTEMS)
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_the_schema_accepts_exactly_what_the_validator_accepts(
    system: str, data: st.DataObject
) -> None:
    policy = _shipped()[system]
    schema = _writable(_spec()["components"]["schemas"][f"{schema_name(system)}Patch"])
    validator = jsonschema_rs.validator_for(schema)  # ECMA-262 patterns, as schemathesis reads
    drawn = data.draw(patches(policy))
    if drawn.deep:
        return  # a thousand-deep array: the JSON reader refuses it before either
    # JSON Schema counts 1.0 as an integer; the gateway wants an integer written as one
    # (docs/clients.md): the one difference a schema cannot spell
    assume(not any(isinstance(v, float) and v.is_integer() for v in leaves(drawn.patch)))
    accepted = not validate_patch(policy, drawn.patch)
    assert validator.is_valid(drawn.patch) == accepted, (
        [e.path for e in validate_patch(policy, drawn.patch)]  # paths and codes, no value
    )


def test_every_kind_of_string_check_is_in_the_pattern(spec: dict[str, Any]) -> None:
    """One example per check the validator makes of a string, both ways."""
    keycom = _writable(spec["components"]["schemas"]["KeycomPatch"])
    check = jsonschema_rs.validator_for(keycom).is_valid
    good = [{"email": ""}, {"email": "a@b.cd"}, {"phone": "+47 22 33 44"}, {"name": " x "},
            {"note": "two\nlines\tand a tab"}, {"cooperative_date": "2024-02-29"},
            {"restricted_type_id": 2}, {"email": None}]
    bad = [{"email": "a@b"}, {"phone": "+47 (1)"}, {"name": "  "}, {"name": None},
           {"country": "N\x00"}, {"note": "\x1b[2J"}, {"cooperative_date": "2023-02-29"},
           {"cooperative_date": "2024-W01-1"}, {"restricted_type_id": 3}, {"modified": "x"},
           {"nope": 1}, {"email": "x" * 250 + "@b.cd"}, {"address_id": 2**53}]
    for patch in good:
        assert check(patch) and not validate_patch(load_policy_set(None)["keycom"], patch), patch
    for patch in bad:
        assert not check(patch) and validate_patch(load_policy_set(None)["keycom"], patch), patch


def test_a_masked_field_may_read_a_string_or_null(spec: dict[str, Any]) -> None:
    record = spec["components"]["schemas"]["BillbeeRecord"]["properties"]
    assert record["Number"]["type"] == ["integer", "string", "null"]  # a pseudonym for auditors
    assert record["LanguageId"]["type"] == ["integer", "null"]  # clear for every role
    assert record["Id"]["readOnly"] is True
    assert spec["components"]["schemas"]["BillbeeRecord"]["additionalProperties"] is True


def test_the_cache_builds_once_per_policy_set(shipped: PolicySet) -> None:
    cache = OpenApiCache()
    first = cache.get(shipped)
    assert cache.get(shipped) is first and cache.fresh(shipped) is first
    other = load_policy_set([*policy_files(None), TOY])
    assert cache.fresh(other) is None
    again = cache.get(other)
    assert again.etag != first.etag
    assert "/v1/systems/toyshop/customers/{customer_id}" in yaml.safe_load(again.yaml)["paths"]


async def test_a_reload_changes_the_served_document(mounted: Stack) -> None:  # noqa: F811
    client = mounted.client
    first = await client.get("/openapi.yaml")
    etag = first.headers["ETag"]
    note = yaml.safe_load(await first.read())["components"]["schemas"]["KeycomPatch"]
    assert "readOnly" not in note["properties"]["note"]
    write_configmap(mounted.settings.policies_dir or Path(), catalog(
        **{"keycom.yaml": note_read_only(catalog()["keycom.yaml"])}
    ))

    async def changed() -> bool:
        resp = await client.get("/openapi.json", headers={"If-None-Match": etag})
        return resp.status == 200

    await until(changed, "the served document follows the reload")
    served = await (await client.get("/openapi.json")).json()
    assert served["components"]["schemas"]["KeycomPatch"]["properties"]["note"]["readOnly"]
