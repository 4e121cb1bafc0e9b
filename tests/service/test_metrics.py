"""Metrics through their exposition: GET /metrics on a tiny real app with a fresh registry."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from common.vocabulary import VALIDATION_CODES, Problem, Verdict
from policies.masking.registry import STRATEGIES
from service.metrics import Metrics, metrics_handler
from service.registry import SYSTEMS

ALLOWED_LABELS = {
    "system", "route", "status", "outcome", "code", "strategy", "method", "le", "result",
    "state", "wait",
    "version",  # only on gdpr_gateway_policy_info, one series per system
}  # fmt: skip
CUSTOMER_ROUTE = "/v1/systems/{system}/customers/{customer_id}"


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics(CollectorRegistry())
    m.init_routes([CUSTOMER_ROUTE, "/v1/systems", "/metrics"])
    return m


async def scrape(aiohttp_client: Callable[..., Any], metrics: Metrics) -> dict[str, float]:
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(metrics))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def key(name: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return name + "{" + inner + "}"


async def test_series_exist_before_any_event(
    aiohttp_client: Callable[..., Any], metrics: Metrics
) -> None:
    s = await scrape(aiohttp_client, metrics)
    for system in SYSTEMS:
        for code in Problem:
            assert s[key("gdpr_gateway_decisions_total", system=system, outcome="denied",
                         code=code)] == 0
        assert s[key("gdpr_gateway_decisions_total", system=system, outcome="allowed",
                     code="none")] == 0
        assert s[key("gdpr_gateway_decisions_total", system=system, outcome="dry_run",
                     code="none")] == 0
        for code in VALIDATION_CODES:
            assert s[key("gdpr_gateway_validation_errors_total", system=system, code=code)] == 0
        assert s[key("gdpr_gateway_upstream_circuit_state", system=system)] == 0
        assert s[key("gdpr_gateway_http_requests_total", system=system, route=CUSTOMER_ROUTE,
                     status="200")] == 0
        assert s[key("gdpr_gateway_upstream_request_duration_seconds_count", system=system,
                     method="PUT")] == 0
    for strategy in {s.name for s in STRATEGIES.values()}:
        assert s[key("gdpr_gateway_masked_values_total", strategy=strategy)] == 0
    assert s[key("gdpr_gateway_http_requests_total", system="none", route="/v1/systems",
                 status="200")] == 0
    assert s[key("gdpr_gateway_audit_append_duration_seconds_count")] == 0
    assert s[key("gdpr_gateway_audit_batch_entries_count")] == 0


async def test_events_are_counted(aiohttp_client: Callable[..., Any], metrics: Metrics) -> None:
    metrics.request("billbee", CUSTOMER_ROUTE, 200, 0.02)
    metrics.request("billbee", CUSTOMER_ROUTE, 422, 0.01)
    metrics.decision("billbee", "denied", "validation_failed")
    metrics.decision("sedona", "allowed", None)
    metrics.decision("sedona", "dry_run", None)
    metrics.validation_errors("billbee", ["too_long", "too_long", "read_only"])
    metrics.masked({"redact": 3, "pseudonym": 1, "clear": 0})
    metrics.upstream("keycom", "patch", 200, 0.1)
    metrics.upstream("keycom", "GET", None, 2.0)
    metrics.audit_append(0.003)
    metrics.audit_batch(17, 0.004)
    metrics.breaker_state("timelog", "open")
    metrics.breaker_state("sedona", "half-open")
    s = await scrape(aiohttp_client, metrics)
    assert s[key("gdpr_gateway_http_requests_total", system="billbee", route=CUSTOMER_ROUTE,
                 status="200")] == 1
    assert s[key("gdpr_gateway_http_requests_total", system="billbee", route=CUSTOMER_ROUTE,
                 status="422")] == 1
    assert s[key("gdpr_gateway_http_request_duration_seconds_count", system="billbee",
                 route=CUSTOMER_ROUTE)] == 2
    assert s[key("gdpr_gateway_decisions_total", system="billbee", outcome="denied",
                 code="validation_failed")] == 1
    assert s[key("gdpr_gateway_decisions_total", system="sedona", outcome="allowed",
                 code="none")] == 1
    assert s[key("gdpr_gateway_decisions_total", system="sedona", outcome="dry_run",
                 code="none")] == 1
    assert s[key("gdpr_gateway_validation_errors_total", system="billbee", code="too_long")] == 2
    assert s[key("gdpr_gateway_validation_errors_total", system="billbee", code="read_only")] == 1
    assert s[key("gdpr_gateway_masked_values_total", strategy="redact")] == 3
    assert s[key("gdpr_gateway_masked_values_total", strategy="pseudonym")] == 1
    assert s[key("gdpr_gateway_masked_values_total", strategy="clear")] == 0
    assert s[key("gdpr_gateway_upstream_requests_total", system="keycom", method="PATCH",
                 status="200")] == 1
    assert s[key("gdpr_gateway_upstream_requests_total", system="keycom", method="GET",
                 status="no_response")] == 1
    assert s[key("gdpr_gateway_upstream_request_duration_seconds_sum", system="keycom",
                 method="GET")] == 2.0
    assert s[key("gdpr_gateway_audit_append_duration_seconds_count")] == 1
    assert s[key("gdpr_gateway_audit_batch_entries_sum")] == 17
    assert s[key("gdpr_gateway_audit_batch_entries_bucket", le="16.0")] == 0
    assert s[key("gdpr_gateway_audit_batch_entries_bucket", le="32.0")] == 1
    assert s[key("gdpr_gateway_upstream_circuit_state", system="timelog")] == 2
    assert s[key("gdpr_gateway_upstream_circuit_state", system="sedona")] == 1


async def test_unbounded_values_never_become_labels(
    aiohttp_client: Callable[..., Any], metrics: Metrics
) -> None:
    metrics.request("mars", "/v1/systems/billbee/customers/4711", 200, 0.01)
    metrics.request("none", "unmatched", 404, 0.01)
    metrics.decision("billbee", "maybe", "jane@example.com")
    metrics.validation_errors("billbee", ["Email=jane@example.com"])
    metrics.masked({"rot13": 2})
    metrics.upstream("billbee", "BREW", 999, 0.1)
    s = await scrape(aiohttp_client, metrics)
    assert s[key("gdpr_gateway_http_requests_total", system="unknown", route="other",
                 status="200")] == 1
    assert s[key("gdpr_gateway_http_requests_total", system="none", route="unmatched",
                 status="404")] == 1
    assert s[key("gdpr_gateway_decisions_total", system="billbee", outcome="other",
                 code="other")] == 1
    assert s[key("gdpr_gateway_validation_errors_total", system="billbee", code="other")] == 1
    assert s[key("gdpr_gateway_masked_values_total", strategy="other")] == 2
    assert s[key("gdpr_gateway_upstream_requests_total", system="billbee", method="other",
                 status="other")] == 1
    joined = "\n".join(s)
    for leaked in ("4711", "jane", "mars", "rot13", "BREW", "999"):
        assert leaked not in joined, leaked


async def test_names_and_label_names_follow_conventions(
    aiohttp_client: Callable[..., Any], metrics: Metrics
) -> None:
    metrics.request("billbee", CUSTOMER_ROUTE, 200, 0.01)
    metrics.policy_versions({"billbee": "a" * 64})
    s = await scrape(aiohttp_client, metrics)
    names = {re.sub(r"\{.*", "", k) for k in s}
    assert names and all(n.startswith("gdpr_gateway_") for n in names)
    label_names = set()
    for sample in s:
        label_names |= set(re.findall(r'(\w+)="', sample))
    assert label_names <= ALLOWED_LABELS
    assert not label_names & {"customer_id", "customer", "user", "name", "value", "actor"}
    counters = {n for n in names if n.endswith("_total")}
    assert "gdpr_gateway_decisions_total" in counters
    assert all(
        n.endswith(("_total", "_created", "_seconds_bucket", "_seconds_sum", "_seconds_count",
                    "_entries_bucket", "_entries_sum", "_entries_count", "_state", "_info",
                    "_successful", "_up", "_connections", "_age_seconds"))
        for n in names
    ), sorted(names)


def test_the_expiry_job_s_metrics() -> None:
    m = Metrics(CollectorRegistry())
    age = "gdpr_gateway_audit_oldest_sealed_value_age_seconds"
    assert m.registry.get_sample_value(age) == 0  # nothing sealed yet
    for result in ("ran", "skipped", "failed"):  # pre-initialised
        assert m.registry.get_sample_value(
            "gdpr_gateway_audit_expiry_runs_total", {"result": result}) == 0
    a_day_ago = datetime.now(UTC) - timedelta(days=1)
    m.audit_expiry("ran", 5, a_day_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    m.audit_expiry("skipped", 0, a_day_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    m.audit_expiry("failed")
    m.audit_expiry("bogus")
    assert m.registry.get_sample_value("gdpr_gateway_audit_values_expired_total") == 5
    assert 86399 < (m.registry.get_sample_value(age) or 0) < 86500
    for result, n in (("ran", 1), ("skipped", 1), ("failed", 1), ("other", 1)):
        assert m.registry.get_sample_value(
            "gdpr_gateway_audit_expiry_runs_total", {"result": result}) == n
    m.audit_expiry("ran", 0, None)  # every sealed value gone
    assert m.registry.get_sample_value(age) == 0


def test_unmatched_is_kept_without_declared_routes() -> None:
    m = Metrics(CollectorRegistry())
    m.request("none", "unmatched", 404, 0.01)
    m.request("none", "no-template", 200, 0.01)
    value = m.registry.get_sample_value(
        "gdpr_gateway_http_requests_total",
        {"system": "none", "route": "unmatched", "status": "404"},
    )
    assert value == 1
    other = m.registry.get_sample_value(
        "gdpr_gateway_http_requests_total", {"system": "none", "route": "other", "status": "200"}
    )
    assert other == 1


def test_unknown_breaker_state_is_a_clear_error(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="unknown breaker state"):
        metrics.breaker_state("billbee", "melting")


def test_two_instances_on_fresh_registries_do_not_clash() -> None:
    Metrics(CollectorRegistry())
    Metrics(CollectorRegistry())  # no global default registry involved


def test_policy_reloads_are_pre_initialised_and_versions_stay_bounded(metrics: Metrics) -> None:
    get = metrics.registry.get_sample_value
    for result in ("success", "failure"):
        assert get("gdpr_gateway_policy_reload_total", {"result": result}) == 0
    metrics.policy_versions({"billbee": "1" * 64, "keycom": "2" * 64})
    metrics.policy_reload(succeeded=True)
    metrics.policy_versions({"billbee": "3" * 64, "keycom": "2" * 64})
    metrics.policy_reload(succeeded=False)
    assert get("gdpr_gateway_policy_reload_total", {"result": "success"}) == 1
    assert get("gdpr_gateway_policy_reload_total", {"result": "failure"}) == 1
    assert get("gdpr_gateway_policy_last_reload_successful") == 0
    series = [
        s.labels for m in metrics.registry.collect() if m.name == "gdpr_gateway_policy"
        for s in m.samples
    ]
    # only the versions in force: the replaced one is gone
    assert sorted((s["system"], s["version"][0]) for s in series) == [
        ("billbee", "3"), ("keycom", "2")
    ]


def test_audit_store_verifications_and_reconciled_intents() -> None:
    m = Metrics(CollectorRegistry())
    value = m.registry.get_sample_value
    assert value("gdpr_gateway_audit_verifications_total", {"result": "broken"}) == 0
    m.audit_store(True)
    assert value("gdpr_gateway_audit_store_up") == 1
    m.audit_store(False)
    assert value("gdpr_gateway_audit_store_up") == 0
    m.audit_verified(True)
    m.audit_verified(False)
    m.audit_verified(False)
    assert value("gdpr_gateway_audit_verifications_total", {"result": "ok"}) == 1
    assert value("gdpr_gateway_audit_verifications_total", {"result": "broken"}) == 2
    m.intents_reconciled(0)
    m.intents_reconciled(3)
    assert value("gdpr_gateway_audit_intents_reconciled_total") == 3


async def test_audit_lock_metrics_read_the_pool_at_scrape_and_stay_bounded(
    aiohttp_client: Callable[..., Any], metrics: Metrics
) -> None:
    s = await scrape(aiohttp_client, metrics)
    assert s[key("gdpr_gateway_audit_lock_connections", state="in_use")] == 0
    assert s[key("gdpr_gateway_audit_lock_timeouts_total", wait="subject")] == 0
    assert s[key("gdpr_gateway_audit_lock_timeouts_total", wait="connection")] == 0
    use = [(3, 24)]
    metrics.watch_audit_locks(lambda: use[0])
    metrics.audit_lock_timeout("connection")
    metrics.audit_lock_timeout("no-such-wait")
    s = await scrape(aiohttp_client, metrics)
    assert s[key("gdpr_gateway_audit_lock_connections", state="in_use")] == 3
    assert s[key("gdpr_gateway_audit_lock_connections", state="max")] == 24
    assert s[key("gdpr_gateway_audit_lock_timeouts_total", wait="connection")] == 1
    assert s[key("gdpr_gateway_audit_lock_timeouts_total", wait="other")] == 1
    use[0] = (0, 24)  # read live, at each scrape
    s = await scrape(aiohttp_client, metrics)
    assert s[key("gdpr_gateway_audit_lock_connections", state="in_use")] == 0


def _record_changes(metrics: Metrics, seconds: list[float]) -> None:
    """What the gateway records per change, with several durations (every bucket of the
    histograms reached, +Inf included) and a status or two."""
    for i, duration in enumerate(seconds):
        metrics.request("keycom", CUSTOMER_ROUTE, 200 if i % 5 else 422, duration)
        metrics.upstream("keycom", "GET", 200, duration / 3)
        metrics.upstream("keycom", "PATCH", 200 if i % 7 else None, duration / 2)
        metrics.decision("keycom", Verdict.ALLOWED if i % 4 else Verdict.DENIED,
                         None if i % 4 else Problem.FORBIDDEN)  # fmt: skip
        metrics.masked({"partial": 10, "redact": i % 2})


def _samples(registry: CollectorRegistry) -> list[tuple[str, list[tuple[str, str]], float]]:
    return sorted(
        (sample.name, sorted(sample.labels.items()), sample.value)
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")  # the time a child was made
    )  # fmt: skip


def test_the_per_change_series_expose_what_the_library_counts() -> None:
    """The request, upstream, decision and masking series are counted in a tally between
    collections (service/metric_tally.py): what a collection exposes is what
    prometheus_client counts when each update goes to it directly, at every collection."""
    seconds = [0.0, 0.0004, 0.005, 0.0051, 0.3, 2.5, 7.5, 10.0, 99.0, float("inf")] * 7
    tallied, direct = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    direct._tally.enabled = False  # every update straight to the library's children
    assert tallied._tally.enabled  # one process: tallied
    for m in (tallied, direct):
        m.init_routes([CUSTOMER_ROUTE])
    _record_changes(tallied, seconds[:30])
    _record_changes(direct, seconds[:30])
    assert _samples(tallied.registry) == _samples(direct.registry)
    _record_changes(tallied, seconds[30:])  # and again after a collection
    _record_changes(direct, seconds[30:])
    assert _samples(tallied.registry) == _samples(direct.registry)
    total = tallied.registry.get_sample_value(
        "gdpr_gateway_http_requests_total",
        {"system": "keycom", "route": CUSTOMER_ROUTE, "status": "200"},
    )
    assert total == 56


def test_a_per_change_update_reaches_the_library_only_when_collected() -> None:
    """An update costs no call into prometheus_client (a method and a lock per value):
    the child's own value moves when the registry collects."""
    metrics = Metrics(CollectorRegistry())
    metrics.init_routes([CUSTOMER_ROUTE])
    child = metrics.requests_total.labels("keycom", CUSTOMER_ROUTE, "200")
    histogram = metrics.upstream_seconds.labels("keycom", "PATCH")
    for _ in range(3):
        metrics.request("keycom", CUSTOMER_ROUTE, 200, 0.001)
        metrics.upstream("keycom", "PATCH", 200, 0.001)
    assert child._value.get() == 0
    assert histogram._sum.get() == 0
    assert metrics.registry.get_sample_value(
        "gdpr_gateway_upstream_request_duration_seconds_count",
        {"system": "keycom", "method": "PATCH"},
    ) == 3  # fmt: skip
    assert child._value.get() == 3
    assert histogram._sum.get() == pytest.approx(0.003)


def test_with_several_workers_every_update_goes_to_the_library_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``serve --workers N``: the shared files are written at each update (another
    worker's scrape counts it), so nothing is tallied."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = Metrics(CollectorRegistry())
    assert not metrics._tally.enabled


async def test_a_scrape_restricted_by_name_counts_the_tallied_updates(
    aiohttp_client: Callable[..., Any], metrics: Metrics
) -> None:
    """``/metrics?name[]=...`` collects only the named series, not the tally's collector:
    the handler moves what waits first."""
    metrics.request("keycom", CUSTOMER_ROUTE, 200, 0.002)
    metrics.request("keycom", CUSTOMER_ROUTE, 200, 0.002)
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(metrics))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await client.get("/metrics", params={"name[]": "gdpr_gateway_http_requests_total"})
    text = await resp.text()
    line = ('gdpr_gateway_http_requests_total{route="/v1/systems/{system}/customers/'
            '{customer_id}",status="200",system="keycom"} 2.0')  # fmt: skip
    assert line in text
