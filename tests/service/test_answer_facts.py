"""service/answer_facts.py: what the edge records of an answer, kept per (route, system,
status) (issue 11) - the same children the labels give, exact counts after many
answers, a bound on what is kept, nothing kept for a system that is not configured, and
emptied when the routes are declared again."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from service import multiproc
from service.answer_facts import FACTS_KEPT
from service.keys import METRICS_KEY
from service.metrics import Metrics
from tests.service.edge_app import edge_app
from tests.service.log_lines import captured

CUSTOMER_ROUTE = "/v1/systems/{system}/customers/{customer_id}"
MISSING_ROUTE = "/v1/systems/{system}/missing"
KNOWN = frozenset({"keycom", "billbee"})


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics(CollectorRegistry(), systems=sorted(KNOWN))
    m.init_routes([CUSTOMER_ROUTE, "/ok"])
    return m


def test_the_kept_children_are_those_the_labels_give(metrics: Metrics) -> None:
    facts = metrics.answer_facts(CUSTOMER_ROUTE, "keycom", 200, KNOWN)
    # one process: the tally's wrappers of the library's children (service/metric_tally)
    assert facts.counter.child is metrics.requests_total.labels("keycom", CUSTOMER_ROUTE, "200")  # type: ignore[attr-defined]
    assert facts.duration.child is metrics.request_seconds.labels("keycom", CUSTOMER_ROUTE)  # type: ignore[attr-defined]
    assert (facts.route, facts.system) == (CUSTOMER_ROUTE, "keycom")
    assert metrics.answer_facts(CUSTOMER_ROUTE, "keycom", 200, KNOWN) is facts
    assert metrics.request_children("keycom", CUSTOMER_ROUTE, 200) == (
        facts.counter,
        facts.duration,
    )
    plain = metrics.answer_facts("/ok", None, 404, KNOWN)
    assert plain.counter.child is metrics.requests_total.labels("none", "/ok", "404")  # type: ignore[attr-defined]
    assert (plain.route, plain.system) == ("/ok", None)


def test_with_several_workers_the_kept_children_are_the_librarys_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert multiproc.enabled()
    metrics = Metrics(CollectorRegistry(), systems=sorted(KNOWN))
    metrics.init_routes([CUSTOMER_ROUTE])
    facts = metrics.answer_facts(CUSTOMER_ROUTE, "billbee", 503, KNOWN)
    assert facts.counter is metrics.requests_total.labels("billbee", CUSTOMER_ROUTE, "503")
    assert facts.duration is metrics.request_seconds.labels("billbee", CUSTOMER_ROUTE)


def test_a_system_that_is_not_configured_is_never_kept(metrics: Metrics) -> None:
    for typo in ("keycomm", "none", "x" * 300):
        facts = metrics.answer_facts(CUSTOMER_ROUTE, typo, 404, KNOWN)
        label = "none" if typo == "none" else "unknown"
        assert facts.counter.child is metrics.requests_total.labels(label, CUSTOMER_ROUTE, "404")  # type: ignore[attr-defined]
        assert facts.system is None
    assert len(metrics.answer_facts) == 0


def test_the_kept_facts_stay_within_their_bound(metrics: Metrics) -> None:
    for status in range(100, 100 + FACTS_KEPT + 50):
        metrics.answer_facts("/ok", None, status, KNOWN)
    assert len(metrics.answer_facts) == FACTS_KEPT
    past = metrics.answer_facts("/ok", None, 100 + FACTS_KEPT + 10, KNOWN)  # worked out again
    assert past.counter.child is metrics.requests_total.labels("none", "/ok", "other")  # type: ignore[attr-defined]
    assert metrics.answer_facts("/ok", None, 100 + FACTS_KEPT + 10, KNOWN) == past
    assert len(metrics.answer_facts) == FACTS_KEPT


def test_declaring_the_routes_again_empties_them(metrics: Metrics) -> None:
    before = metrics.answer_facts("/gone", None, 200, KNOWN)
    assert before.counter.child is metrics.requests_total.labels("none", "other", "200")  # type: ignore[attr-defined]
    metrics.init_routes(["/gone"])
    assert len(metrics.answer_facts) == 0
    after = metrics.answer_facts("/gone", None, 200, KNOWN)
    assert after.counter.child is metrics.requests_total.labels("none", "/gone", "200")  # type: ignore[attr-defined]


# -- through the edge -------------------------------------------------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({})


async def _missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    app = edge_app()
    app.router.add_get("/ok", _ok)
    app.router.add_get(CUSTOMER_ROUTE, _ok)
    app.router.add_get(MISSING_ROUTE, _missing)
    app[METRICS_KEY].init_routes(
        [r.resource.canonical for r in app.router.routes() if r.resource is not None]
    )
    c: TestClient[Any, Any] = await aiohttp_client(app)
    return c


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    with captured("gdpr_gateway.access") as lines:
        yield lines


async def test_counts_after_many_answers_are_exact(
    client: TestClient[Any, Any], access_lines: list[str]
) -> None:
    metrics: Metrics = client.app[METRICS_KEY]
    paths = {
        "/ok": ("none", "/ok", "200", None),
        "/v1/systems/keycom/customers/1": ("keycom", CUSTOMER_ROUTE, "200", "keycom"),
        "/v1/systems/keycom/customers/2": ("keycom", CUSTOMER_ROUTE, "200", "keycom"),
        "/v1/systems/billbee/missing": ("billbee", MISSING_ROUTE, "404", "billbee"),
        "/v1/systems/mars/customers/3": ("unknown", CUSTOMER_ROUTE, "200", None),
        "/nowhere": ("none", "unmatched", "404", None),
    }
    rounds = 7
    for _ in range(rounds):
        for path in paths:
            await (await client.get(path)).read()
    for path, (system, route, status, _) in paths.items():
        expected = rounds * sum(1 for p in paths.values() if p[:3] == (system, route, status))
        labels = {"system": system, "route": route, "status": status}
        assert metrics.registry.get_sample_value(
            "gdpr_gateway_http_requests_total", labels
        ) == expected, path  # fmt: skip
        assert metrics.registry.get_sample_value(
            "gdpr_gateway_http_request_duration_seconds_count",
            {"system": system, "route": route},
        ) == rounds * sum(1 for p in paths.values() if p[:2] == (system, route)), path  # fmt: skip
    parsed = [json.loads(line) for line in access_lines]
    lines = [(line["route"], str(line["status"]), line["system"]) for line in parsed]
    assert len(lines) == rounds * len(paths)
    assert lines[: len(paths)] == [(r, s, shown) for _, r, s, shown in paths.values()]
    assert all("mars" not in line for line in access_lines)
    # kept: the kinds with a configured system or none (not mars)
    assert len(metrics.answer_facts) == 4
