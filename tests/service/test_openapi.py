"""service/openapi.yaml is a valid OpenAPI 3.1 document and agrees with the code.

Routes are compared in both directions with what the real app mounts (``create_app``,
its router read after it is built). Every enum of the document is compared with the
code's vocabulary, imported (:mod:`common.vocabulary`, ``service.registry``, the policy
format's own words): problem codes, field codes, outcomes, actions, phases, modes.
Statuses are compared with ``service/errors.py``, the middleware's table and
docs/api.md. The schemas are checked against bodies built as the code builds them, and,
through the real app (the ``stack`` fixture of conftest.py), every route's answers are
checked against the responses its operation documents.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import service.errors
from common.vocabulary import (
    FIELD_PROBLEMS,
    POLICY_PROBLEMS,
    VALIDATION_CODES,
    Action,
    AuditOutcome,
    ErasureReason,
    FieldCode,
    Phase,
    Problem,
    Purpose,
)
from policies import load_policy_set
from policies.model import MODES, SENSITIVITIES, TYPES
from policies.processing import RecipientKind, Safeguard
from policies.record import PERSONAL, build_record
from service.app import create_app
from service.demo_settings import demo_settings
from service.middleware import HTTP_PROBLEMS
from service.registry import SYSTEMS
from tests.service.edge_app import edge_app

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "service" / "openapi.yaml"
DOCS_PATH = REPO / "docs" / "api.md"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Route = tuple[str, str]

# Codes the framework layer answers with that no domain class names (the middleware's).
FRAMEWORK_CODES = {
    Problem.NOT_FOUND: 404,
    Problem.METHOD_NOT_ALLOWED: 405,
    Problem.INTERNAL_ERROR: 500,
    Problem.AUDIT_UNAVAILABLE: 503,
}


# -- reading the document ------------------------------------------------------------------


def load_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    assert isinstance(spec, dict)
    return spec


def documented_routes(spec: dict[str, Any]) -> set[Route]:
    return {
        (method.upper(), path)
        for path, item in spec.get("paths", {}).items()
        for method in HTTP_METHODS
        if method in item
    }


def operations(spec: dict[str, Any]) -> list[tuple[Route, dict[str, Any]]]:
    return [
        ((method.upper(), path), item[method])
        for path, item in spec["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]


def problem_codes(spec: dict[str, Any]) -> list[str]:
    return list(spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])


def catalog(spec: dict[str, Any]) -> dict[str, int]:
    return {code: entry["status"] for code, entry in spec["x-problem-catalog"].items()}


# -- reading the code ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> web.Application:
    """The real app, built (not started): its router holds every route it mounts."""
    state = tmp_path_factory.mktemp("app")
    settings = demo_settings(
        port=0,
        state_dir=state,
        upstream_urls={s: f"http://127.0.0.1:{i}" for i, s in enumerate(SYSTEMS, 1)},
        audit_url=f"sqlite+aiosqlite:///{state}/audit.db",
        master_key=os.urandom(32),
        signing_key=os.urandom(32),
    )
    return create_app(settings)


def mounted_routes(app: web.Application) -> set[Route]:
    found = {(route.method.upper(), route.resource.canonical)
             for route in app.router.routes() if route.resource is not None}  # fmt: skip
    return {route for route in found if route[0] != "HEAD"}


def compare(documented: set[Route], mounted: set[Route]) -> tuple[set[Route], set[Route]]:
    """(mounted but not documented, documented but not mounted)."""
    return mounted - documented, documented - mounted


# -- the document is a valid OpenAPI 3.1 document -----------------------------------------


def test_document_is_a_valid_openapi_3_1_document() -> None:
    spec = load_spec()
    assert spec["openapi"] == "3.1.0"
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema or a bad $ref


def test_the_validator_rejects_an_unresolved_path_parameter() -> None:
    broken = load_spec()
    del broken["paths"]["/v1/audit/{audit_id}"]["parameters"][0]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_servers_security_and_headers_are_declared() -> None:
    spec = load_spec()
    assert "http://127.0.0.1:8080" in [s["url"] for s in spec["servers"]]
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearerAuth": []}]
    header_params = {
        p["name"] for p in spec["components"]["parameters"].values() if p["in"] == "header"
    }
    assert {"X-Purpose", "X-Request-Id", "If-Match"} <= header_params
    assert {"X-Request-Id", "X-Audit-Id", "ETag", "Retry-After"} <= set(
        spec["components"]["headers"]
    )
    patch = spec["paths"]["/v1/systems/{system}/customers/{customer_id}"]["patch"]
    assert set(patch["requestBody"]["content"]) == {
        "application/json",
        "application/merge-patch+json",
    }
    assert {"$ref": "#/components/parameters/DryRun"} in patch["parameters"]
    assert spec["components"]["parameters"]["DryRun"]["name"] == "dry_run"
    limit = next(p for p in spec["paths"]["/v1/audit"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)


# -- routes: the document and the app agree, both ways ------------------------------------


def test_every_mounted_route_is_documented_and_every_documented_route_is_mounted(
    app: web.Application,
) -> None:
    undocumented, unmounted = compare(documented_routes(load_spec()), mounted_routes(app))
    assert undocumented == set(), "routes the app mounts that openapi.yaml does not describe"
    assert unmounted == set(), "routes openapi.yaml describes that the app does not mount"


def test_the_app_mounts_the_route_modules_and_metrics(app: web.Application) -> None:
    mounted = mounted_routes(app)
    assert {("PATCH", "/v1/systems/{system}/customers/{customer_id}"), ("GET", "/v1/audit"),
            ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/ui/")} <= mounted  # fmt: skip


def test_a_route_removed_from_the_document_is_caught(app: web.Application) -> None:
    doctored = copy.deepcopy(load_spec())
    path = "/v1/systems/{system}/customers/{customer_id}"
    del doctored["paths"][path]["patch"]
    undocumented, unmounted = compare(documented_routes(doctored), mounted_routes(app))
    assert undocumented == {("PATCH", path)}
    assert unmounted == set()


def test_a_route_added_to_the_code_without_documentation_is_caught(
    tmp_path: Path,
) -> None:
    settings = demo_settings(
        port=0, state_dir=tmp_path, audit_url="sqlite+aiosqlite:///x.db",
        upstream_urls={s: "http://127.0.0.1:1" for s in SYSTEMS},
        master_key=os.urandom(32), signing_key=os.urandom(32),
    )  # fmt: skip
    extra = create_app(settings)

    async def gone(request: web.Request) -> web.Response:
        raise web.HTTPNoContent

    extra.router.add_delete("/v1/extra/{x}", gone)
    extra.router.add_route("PUT", "/v1/other", gone)
    undocumented, unmounted = compare(documented_routes(load_spec()), mounted_routes(extra))
    assert undocumented == {("DELETE", "/v1/extra/{x}"), ("PUT", "/v1/other")}
    assert unmounted == set()


# -- problem codes --------------------------------------------------------------------------


def _gateway_error_classes() -> list[type[service.errors.GatewayError]]:
    found: list[type[service.errors.GatewayError]] = []
    pending = [service.errors.GatewayError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_catalog_and_problem_enum_are_the_vocabulary() -> None:
    spec = load_spec()
    codes = problem_codes(spec)
    assert len(codes) == len(set(codes))
    assert set(codes) == set(catalog(spec)) == set(Problem)
    for code, status in catalog(spec).items():
        assert 400 <= status <= 599, code


def test_every_code_of_service_errors_is_documented_with_its_status() -> None:
    documented = catalog(load_spec())
    classes = _gateway_error_classes()
    assert len(classes) > 10  # the walk found the tree
    for cls in classes:
        assert isinstance(cls.code, Problem), cls.__name__
        assert documented[cls.code] == cls.status, cls.__name__
    for code, status in service.errors.PolicyDenied._STATUS.items():
        assert documented.get(code) == status, code
    assert set(service.errors.PolicyDenied._STATUS) == POLICY_PROBLEMS


def test_the_audit_entry_code_is_part_of_the_error_tree() -> None:
    classes = {cls.code: cls.status for cls in _gateway_error_classes()}
    assert classes.get(Problem.AUDIT_ENTRY_NOT_FOUND) == 404


def test_every_code_the_middleware_maps_http_errors_to_is_documented() -> None:
    documented = catalog(load_spec())
    assert len(HTTP_PROBLEMS) >= 5
    for status, (code, _title, _detail) in HTTP_PROBLEMS.items():
        assert documented.get(code) == status, code


def test_the_framework_codes_are_documented() -> None:
    documented = catalog(load_spec())
    for code, status in FRAMEWORK_CODES.items():
        assert documented.get(code) == status, code


def api_md_codes(text: str) -> dict[str, int]:
    """``| 403 | `purpose_required`, `purpose_not_allowed` | ... |`` rows of docs/api.md."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"[45]\d\d", cells[0]):
            for code in re.findall(r"`([a-z_]+)`", cells[1]):
                found[code] = int(cells[0])
    return found


def test_every_code_of_the_docs_problem_table_is_in_the_spec_with_its_status() -> None:
    # docs/api.md carries the contract's problem table inside the repository
    wanted = api_md_codes(DOCS_PATH.read_text(encoding="utf-8"))
    assert len(wanted) >= 20  # the table was found
    documented = catalog(load_spec())
    for code, status in wanted.items():
        assert documented.get(code) == status, code


def test_the_api_md_reader_reads_a_table_row() -> None:
    row = "| 403 | `purpose_required`, `purpose_not_allowed` | no `X-Purpose` |\n| x | y |"
    assert api_md_codes(row) == {"purpose_required": 403, "purpose_not_allowed": 403}


# -- the document's enums are the code's vocabulary -------------------------------------------


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def test_field_codes_are_the_vocabulary() -> None:
    schema = _schema(load_spec(), "FieldProblem")
    assert set(schema["properties"]["code"]["enum"]) == set(FieldCode) | FIELD_PROBLEMS
    assert set(VALIDATION_CODES) < set(FieldCode)  # what the engine's validate() gives


def test_outcomes_actions_phases_purposes_and_systems_are_the_vocabulary() -> None:
    spec = load_spec()
    entry = _schema(spec, "AuditEntry")["properties"]
    assert set(entry["outcome"]["enum"]) == {*AuditOutcome, None}
    assert set(entry["phase"]["enum"]) == set(Phase)
    assert entry["action"]["examples"] == list(Action)
    query = next(
        p for p in spec["paths"]["/v1/audit"]["get"]["parameters"] if p.get("name") == "outcome"
    )
    assert query["schema"]["enum"] == list(AuditOutcome)
    parameters = spec["components"]["parameters"]
    systems = next(p for p in parameters.values() if p["name"] == "system")
    assert systems["schema"]["examples"] == list(SYSTEMS)
    purpose = next(p for p in parameters.values() if p["name"] == "X-Purpose")
    assert purpose["schema"]["examples"] == list(Purpose)


def test_the_policy_format_words_are_the_policy_engine_s() -> None:
    spec = load_spec()
    assert _schema(spec, "PolicyTable")["properties"]["mode"]["enum"] == list(MODES)
    listed = _schema(spec, "SystemList")["properties"]["systems"]["items"]["properties"]
    assert listed["mode"]["enum"] == list(MODES)
    field = _schema(spec, "FieldRow")["properties"]
    assert field["type"]["enum"] == list(TYPES)
    assert field["sensitivity"]["enum"] == list(SENSITIVITIES)


def test_the_erasure_reasons_are_the_vocabulary() -> None:
    entry = _schema(load_spec(), "AuditEntry")["properties"]
    assert entry["erasure"]["properties"]["reason"]["enum"] == list(ErasureReason)


def test_the_record_s_words_are_the_policy_format_s() -> None:
    spec = load_spec()
    activity = _schema(spec, "ProcessingActivity")["properties"]
    recipient = activity["recipients"]["items"]["properties"]
    assert recipient["kind"]["enum"] == list(RecipientKind)
    transfer = activity["transfers"]["items"]["properties"]
    assert transfer["safeguard"]["enum"] == list(Safeguard)
    row = _schema(spec, "PersonalDataRow")["properties"]
    assert row["sensitivity"]["enum"] == list(PERSONAL)
    purposes = activity["purposes"]["items"]["properties"]["purpose"]
    assert purposes["examples"] == list(Purpose)


# -- each operation answers what it says ----------------------------------------------------


def test_each_operation_lists_its_problem_codes_with_a_response_for_each_status() -> None:
    spec = load_spec()
    statuses = catalog(spec)
    for route, op in operations(spec):
        codes = op.get("x-problem-codes")
        assert isinstance(codes, list), route
        responses = op["responses"]
        for code in codes:
            assert code in statuses, (route, code)
            assert str(statuses[code]) in responses, (route, code)
        problem_statuses = {
            status
            for status, response in responses.items()
            if status[0] in "45" and "$ref" in response
        }
        assert problem_statuses == {str(statuses[c]) for c in codes}, route
        assert any(status.startswith("2") for status in responses), route


def test_secured_operations_answer_401_and_open_ones_do_not_need_a_token() -> None:
    spec = load_spec()
    open_routes = {
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.yaml"),
        ("GET", "/openapi.json"),
        # the review page loads without a token (a browser sends none); a token that is
        # sent must be valid (401), which `security: []` does not forbid
        ("GET", "/ui"),
        ("GET", "/ui/"),
        ("GET", "/ui/{asset}"),
    }
    for route, op in operations(spec):
        if route in open_routes:
            assert op.get("security") == [], route
        else:
            assert "security" not in op, route  # the document-wide bearer requirement
            assert "unauthenticated" in op["x-problem-codes"], route


def test_problem_responses_use_the_problem_schema() -> None:
    spec = load_spec()
    ref = {"$ref": "#/components/schemas/Problem"}
    for name, response in spec["components"]["responses"].items():
        assert response["content"] == {"application/problem+json": {"schema": ref}}, name
        assert "X-Request-Id" in response["headers"], name
    assert "Retry-After" in spec["components"]["responses"]["RateLimited"]["headers"]


def test_the_human_guide_lists_every_code_with_its_status() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    assert "openapi.yaml" in text
    listed = api_md_codes(text)
    assert listed == catalog(load_spec())


# -- served at /openapi.yaml -----------------------------------------------------------------


def test_the_document_ships_as_package_data() -> None:
    packaged = resources.files("service").joinpath("openapi.yaml").read_bytes()
    assert packaged == SPEC_PATH.read_bytes()


async def test_the_document_is_served_at_openapi_yaml(aiohttp_client: Any) -> None:
    """Served: the hand-written document with the policies' schemas, as YAML and JSON with
    one ETag; If-None-Match with it is 304."""
    from types import SimpleNamespace

    from service.keys import OPENAPI_KEY, POLICIES_KEY
    from service.openapi_gen import OpenApiCache, build
    from service.routes import health

    policies = load_policy_set(None)
    app = web.Application()
    app[OPENAPI_KEY] = OpenApiCache()
    app[POLICIES_KEY] = SimpleNamespace(engine=SimpleNamespace(policies=policies))  # type: ignore[assignment]
    app.add_routes(health.routes)
    client = await aiohttp_client(app)
    response = await client.get("/openapi.yaml")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    served = yaml.safe_load(await response.read())
    assert served == json.loads(json.dumps(build(load_spec(), policies)))
    etag = response.headers["ETag"]
    as_json = await client.get("/openapi.json")
    assert as_json.content_type == "application/json"
    assert await as_json.json() == served and as_json.headers["ETag"] == etag
    again = await client.get("/openapi.yaml", headers={"If-None-Match": etag})
    assert again.status == 304 and not await again.read()
    other = await client.get("/openapi.yaml", headers={"If-None-Match": '"other"'})
    assert other.status == 200


# -- the schemas accept the bodies the code builds ------------------------------------------


def pointer_validator(spec: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for the schema at JSON pointer ``pointer``."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:gdpr-gateway:openapi", DRAFT202012.create_resource(spec)
    )
    return Draft202012Validator({"$ref": f"urn:gdpr-gateway:openapi#{pointer}"}, registry=registry)


def schema_validator(spec: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` of the document."""
    return pointer_validator(spec, f"/components/schemas/{name}")


ENTRY = {
    "audit_id": "01JEXAMPLE",
    "seq": 7,
    "time": "2026-11-23T19:00:00.000000Z",
    "actor": "demo-editor",
    "roles": ["editor"],
    "system": "billbee",
    "customer_id": "1002",
    "purpose": "customer_service",
    "request_id": "r1",
    "action": "update",
    "phase": "intent",
    "outcome": None,
    "problem_code": None,
    "upstream_status": None,
    "upstream_latency_ms": None,
    "intent_id": None,
    "changed": ["Email"],
    "before": {"Email": "***"},
    "after": {"Email": "***"},
    "policy_version": "abc123",
    "reason": None,
    "target_id": None,
    "prev_hash": "00" * 32,
    "hash": "ab" * 32,
}

# Each body is shaped exactly as the handler in service/routes builds it.
BODIES: list[tuple[str, dict[str, Any]]] = [
    (
        "UpdateResult",
        {
            "system": "billbee",
            "customer_id": "1002",
            "applied": True,
            "dry_run": False,
            "changed": ["Email", "Address.City"],
            "customer": {"Id": 1002, "Email": "***"},
            "audit_id": "01JEXAMPLE",
            "policy_version": "abc123",
        },
    ),
    (
        "UpdateResult",
        {
            "system": "keycom",
            "customer_id": "4001",
            "applied": False,
            "dry_run": True,
            "changed": [],
            "customer": {},
            "audit_id": None,
            "policy_version": "abc123",
        },
    ),
    (
        "CustomerRead",
        {"system": "sedona", "customer_id": "2001", "customer": {}, "policy_version": "v"},
    ),
    ("SystemList", {"systems": [{"system": "timelog", "mode": "put", "policy_version": "v"}]}),
    (
        "PolicyTable",
        {
            "system": "keycom",
            "mode": "patch",
            "id_field": "id",
            "policy_version": "v",
            "fields": [],
        },
    ),
    ("AuditEntry", ENTRY),
    ("AuditPage", {"entries": [ENTRY], "next_cursor": None}),
    ("AuditPage", {"entries": [], "next_cursor": "c2"}),
    ("VerifyReport", {"ok": True, "entries": 3, "head": "ab" * 32, "first_bad": None}),
    ("VerifyReport", {"ok": False, "entries": 3, "head": "ab" * 32, "first_bad": "01JBAD"}),
    ("RevealResult", {"entry": ENTRY, "reveal_audit_id": "01JREVEAL"}),
    (
        "SubjectExport",
        {
            "system": "billbee",
            "customer_id": "1002",
            "entries": [ENTRY],
            "export_audit_id": "01JEXPORT",
        },
    ),
    (
        "EraseResult",
        {"system": "billbee", "customer_id": "1002", "erased": True, "audit_id": "01JERASE"},
    ),
    ("RecordOfProcessing", build_record(load_policy_set())),
    ("Health", {"status": "ok"}),
    ("Readiness", {"status": "not_ready", "checks": {"policies": True, "audit": False}}),
    ("Reason", {"reason": "subject access request 42"}),
    (
        "Problem",
        {
            "type": "https://gdpr-gateway.dev/problems/validation_failed",
            "title": "Validation failed",
            "status": 422,
            "detail": "1 field(s) failed validation",
            "code": "validation_failed",
            "errors": [{"field": "Email", "code": "invalid_format", "message": "not an email"}],
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "body"), BODIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BODIES)]
)
def test_a_body_the_code_builds_matches_its_schema(name: str, body: dict[str, Any]) -> None:
    schema_validator(load_spec(), name).validate(body)


@pytest.mark.parametrize(
    ("name", "body"), BODIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BODIES)]
)
def test_a_body_missing_a_required_member_is_rejected(name: str, body: dict[str, Any]) -> None:
    spec = load_spec()
    required = spec["components"]["schemas"][name]["required"]
    assert required, name
    broken = dict(body)
    del broken[required[0]]
    assert not schema_validator(spec, name).is_valid(broken)


def test_the_problem_schema_rejects_an_unknown_code_and_field_code() -> None:
    validator = schema_validator(load_spec(), "Problem")
    body = {"type": "t", "title": "T", "status": 400, "detail": "d", "code": "malformed_json"}
    assert validator.is_valid(body)
    assert not validator.is_valid(body | {"code": "no_such_code"})
    bad_field = {"field": "Email", "code": "no_such_field_code", "message": "m"}
    assert not validator.is_valid(body | {"errors": [bad_field]})


def _raisers() -> list[tuple[str, int, Callable[[], Exception]]]:
    """(code, status, make the exception) for every domain error class and policy code."""
    out: list[tuple[str, int, Callable[[], Exception]]] = []
    for cls in _gateway_error_classes():
        if cls is service.errors.PolicyDenied:
            continue
        out.append((cls.code, cls.status, functools.partial(cls, "a detail without values")))
    for code, status in service.errors.PolicyDenied._STATUS.items():
        out.append((code, status, functools.partial(service.errors.PolicyDenied, code, "detail")))
    return out


async def test_the_real_middleware_answers_problems_the_schema_accepts(
    aiohttp_client: Any,
) -> None:
    audit_errors = pytest.importorskip("audit.errors")
    spec = load_spec()
    validator = schema_validator(spec, "Problem")
    id_pattern = re.compile(spec["components"]["headers"]["X-Request-Id"]["schema"]["pattern"])
    raisers = _raisers()
    raisers.append(("audit_unavailable", 503, lambda: audit_errors.AuditUnavailable("down")))
    raisers.append(("internal_error", 500, lambda: RuntimeError("boom")))
    raisers.append(
        (
            "validation_failed",
            422,
            lambda: service.errors.ValidationFailed(
                "bad",
                errors=[service.errors.FieldProblem("Email", "invalid_format", "not an email")],
            ),
        )
    )

    async def fail(request: web.Request) -> web.Response:
        raise raisers[int(request.match_info["n"])][2]()

    app = edge_app()
    app.router.add_get("/fail/{n}", fail)
    client = await aiohttp_client(app)
    answers = [(f"/fail/{n}", "GET", code, status) for n, (code, status, _) in enumerate(raisers)]
    answers.append(("/no/such/route", "GET", "not_found", 404))
    answers.append(("/fail/0", "DELETE", "method_not_allowed", 405))
    for path, method, code, status in answers:
        response = await client.request(method, path)
        body = await response.json(content_type=None)
        assert (response.status, response.content_type) == (status, "application/problem+json")
        validator.validate(body)
        assert (body["code"], body["status"]) == (code, status)
        assert catalog(spec)[code] == status
        assert id_pattern.fullmatch(response.headers["X-Request-Id"])


def test_the_shipped_policies_answer_what_the_schemas_describe() -> None:
    policies = pytest.importorskip("policies")
    loaded = policies.load_policy_set(None)
    spec = load_spec()
    listing = {
        "systems": [
            {"system": name, "mode": loaded[name].mode, "policy_version": loaded[name].version}
            for name in loaded.systems
        ]
    }
    schema_validator(spec, "SystemList").validate(listing)
    assert len(loaded.systems) >= 4
    for name in loaded.systems:
        policy = loaded[name]
        body = {  # as service/routes/systems.py builds it
            "system": name,
            "mode": policy.mode,
            "id_field": policy.id_field,
            "policy_version": policy.version,
            "fields": policy.field_table(),
        }
        schema_validator(spec, "PolicyTable").validate(body)


def test_a_rendered_audit_entry_matches_the_entry_schema() -> None:
    entries = pytest.importorskip("audit.entries")
    types = pytest.importorskip("audit.types")
    body = entries.base_body(
        "01JEXAMPLE",
        actor="demo-editor",
        roles=("editor",),
        system="billbee",
        customer_id="1002",
        purpose="customer_service",
        request_id="r1",
        action="update",
        phase="outcome",
        outcome=types.Outcome(outcome="applied", upstream_status=200, upstream_latency_ms=3.5),
        intent_id="01JINTENT",
        changed=("Email",),
        before={"Email": "x"},
        after={"Email": "y"},
        policy_version="abc123",
    )
    rendered = entries.render(3, json.dumps(body), "00" * 32, "ab" * 32)
    validator = schema_validator(load_spec(), "AuditEntry")
    validator.validate(rendered)
    properties = load_spec()["components"]["schemas"]["AuditEntry"]["properties"]
    assert set(rendered) <= set(properties), "entry members the schema does not describe"


# -- the running gateway answers as the document says ---------------------------------------


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


async def assert_conforms(spec: dict[str, Any], template: str, response: Any) -> str | None:
    """The answer's status, media type, body and headers are the ones the operation
    documents; a problem's code is one the operation lists. Returns the problem code."""
    method = response.method.lower()
    op = spec["paths"][template][method]
    status = str(response.status)
    assert status in op["responses"], (method, template, status)
    declared = op["responses"][status]
    base = f"/paths/{_escape(template)}/{method}/responses/{status}"
    if "$ref" in declared:
        base = declared["$ref"].removeprefix("#")
        declared = spec["components"]["responses"][base.rsplit("/", 1)[-1]]
    assert response.content_type in declared["content"], (method, template, status)
    for header in declared.get("headers", {}):
        if header != "X-Audit-Id" or response.status < 400:
            assert header in response.headers, (method, template, status, header)
    if not response.content_type.endswith("json"):
        return None
    body = await response.json(content_type=None)
    pointer = f"{base}/content/{_escape(response.content_type)}/schema"
    pointer_validator(spec, pointer).validate(body)
    if response.content_type == "application/problem+json":
        assert body["code"] in op["x-problem-codes"], (method, template, body["code"])
        return str(body["code"])
    return None


async def test_the_running_gateway_answers_as_documented(stack: Any) -> None:
    """Every route, its success and its common refusals, through the real app (emulated
    upstreams, SQLite audit): each answer matches the operation's documented response,
    in the document the gateway serves (the customer routes with the policies' schemas)."""
    client = stack.client
    async with client.get("/openapi.yaml") as response:
        spec = yaml.safe_load(await response.read())
    static = load_spec()
    generated = {p for p in spec["paths"] if p not in static["paths"]}
    assert generated == {f"/v1/systems/{s}/customers/{{customer_id}}" for s in SYSTEMS}
    assert {p: spec["paths"][p] for p in static["paths"] if p in spec["paths"]} == {
        p: item for p, item in static["paths"].items() if "{system}/customers" not in p
    }
    editor = {"Authorization": "Bearer demo-editor", "X-Purpose": "customer_service"}
    auditor = {"Authorization": "Bearer demo-auditor"}
    officer = {"Authorization": "Bearer demo-privacy"}
    customer = "/v1/systems/billbee/customers/{customer_id}"
    seen: list[str | None] = []

    async def check(template: str, method: str, path: str, **kwargs: Any) -> Any:
        async with client.request(method, path, **kwargs) as response:
            seen.append(await assert_conforms(spec, template, response))
            if response.content_type.endswith("json"):
                return await response.json(content_type=None)
            return await response.read()

    await check("/v1/systems", "GET", "/v1/systems", headers=auditor)
    await check("/v1/systems", "GET", "/v1/systems")
    for system in ("billbee", "sedona", "timelog", "keycom", "nope"):
        await check(
            "/v1/systems/{system}/policy", "GET", f"/v1/systems/{system}/policy", headers=auditor
        )
    async with client.get("/v1/systems/billbee/customers/1002", headers=editor) as response:
        await assert_conforms(spec, customer, response)
        etag = response.headers["ETag"]
    change = {"Email": "changed@example.org"}
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002?dry_run=true",
        headers=editor,
        json=change,
    )
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002",
        headers={**editor, "If-Match": etag},
        json=change,
    )
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002",
        headers={**editor, "If-Match": '"stale"'},
        json=change,
    )
    await check(
        customer, "PATCH", "/v1/systems/billbee/customers/1001", headers=editor, json=change
    )
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002",
        headers=editor,
        json={"NoSuchField": 1},
    )
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002",
        headers={"Authorization": "Bearer demo-editor"},
        json=change,
    )
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002",
        headers={**editor, "Content-Type": "text/plain"},
        data=b"{}",
    )
    await check(
        customer,
        "PATCH",
        "/v1/systems/billbee/customers/1002",
        headers={**editor, "Content-Type": "application/merge-patch+json"},
        data=b"{",
    )
    await check(customer, "GET", "/v1/systems/billbee/customers/999999", headers=editor)
    await check(customer, "GET", "/v1/systems/billbee/customers/1002")
    page = await check("/v1/audit", "GET", "/v1/audit?limit=5", headers=auditor)
    await check("/v1/audit", "GET", "/v1/audit?limit=501", headers=auditor)
    await check("/v1/audit", "GET", "/v1/audit", headers=editor)
    await check("/v1/audit/verify", "GET", "/v1/audit/verify", headers=auditor)
    audit_id = page["entries"][0]["audit_id"]
    await check("/v1/audit/{audit_id}", "GET", f"/v1/audit/{audit_id}", headers=auditor)
    await check("/v1/audit/{audit_id}", "GET", "/v1/audit/no-such-entry", headers=auditor)
    reveal = "/v1/audit/{audit_id}/reveal"
    await check(
        reveal,
        "POST",
        f"/v1/audit/{audit_id}/reveal",
        headers=officer,
        json={"reason": "test of the contract"},
    )
    await check(reveal, "POST", f"/v1/audit/{audit_id}/reveal", headers=officer, json={})
    await check(
        reveal, "POST", f"/v1/audit/{audit_id}/reveal", headers=auditor, json={"reason": "x"}
    )
    export = "/v1/subjects/{system}/{customer_id}/export"
    erase = "/v1/subjects/{system}/{customer_id}/erase"
    await check(export, "GET", "/v1/subjects/billbee/1002/export", headers=officer)
    await check(export, "GET", "/v1/subjects/nope/1002/export", headers=officer)
    await check(
        erase,
        "POST",
        "/v1/subjects/billbee/1002/erase",
        headers=officer,
        json={"reason": "test of the contract"},
    )
    await check(
        erase, "POST", "/v1/subjects/billbee/1002/erase", headers=editor, json={"reason": "x"}
    )
    for template in ("/healthz", "/readyz", "/metrics"):
        await check(template, "GET", template)
    served = await check("/openapi.yaml", "GET", "/openapi.yaml")
    assert yaml.safe_load(served) == spec
    await check("/openapi.json", "GET", "/openapi.json")
    for system, known in (("sedona", "2001"), ("timelog", "3001"), ("keycom", "4002")):
        for headers in (editor, auditor, officer):  # every masking of every system
            await check(customer.replace("billbee", system), "GET",
                        f"/v1/systems/{system}/customers/{known}",
                        headers={**headers, "X-Purpose": "customer_service"})
    assert {
        "unauthenticated",
        "forbidden",
        "purpose_required",
        "unknown_system",
        "customer_not_found",
        "customer_archived",
        "precondition_failed",
        "unsupported_media_type",
        "malformed_json",
        "validation_failed",
        "audit_entry_not_found",
    } <= set(seen)
