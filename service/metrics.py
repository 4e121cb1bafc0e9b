"""Prometheus metrics, created against an injected ``CollectorRegistry``.

Every label is bounded and pre-initialised, so a series exists (at 0) before its first
event and ``rate()`` works from the start: systems (``service.registry``), route
templates, decision outcomes, problem codes and field codes (:mod:`common.vocabulary`), masking
strategies (``policies.masking.registry``), HTTP methods. A label value outside its
vocabulary is recorded as ``other`` (or ``unknown`` for a system) - never as itself - so
a caller's typo or a raw path cannot create series.
No label ever carries a customer id, a field value or a user name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.aiohttp import make_aiohttp_handler

from audit.errors import LockWait
from common.vocabulary import VALIDATION_CODES, Problem, Verdict, parse
from policies.masking.registry import canonical_names
from service import multiproc
from service.answer_facts import NO_SYSTEM, UNKNOWN_SYSTEM, AnswerFactsCache
from service.metric_tally import Increments, Observes, Tally
from service.registry import SYSTEMS as SHIPPED

PREFIX: Final = "gdpr_gateway_"
OTHER: Final = "other"
#: route label of a request no route matched (a 404 of the router)
UNMATCHED: Final = "unmatched"
#: the problem code label of a decision that was not a refusal
NO_PROBLEM: Final = "none"
#: the field codes of the gateway's own validation
FIELD_CODES: Final = frozenset(VALIDATION_CODES)
STRATEGIES: Final = canonical_names()
UPSTREAM_METHODS: Final = ("GET", "PUT", "PATCH", "POST", "DELETE")
#: upstream status label when no HTTP answer came (timeout, connection refused)
NO_RESPONSE: Final = "no_response"
#: at most this many label combinations have their children kept (raw labels are
#: bounded by the routes and systems; the bound holds even if a caller's were not)
_CHILDREN_KEPT: Final = 4096
#: results of a policy (re)load (service/reload.py)
RELOAD_RESULTS: Final = ("success", "failure")
BREAKER_STATES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "open": 2}
#: the result label of a chain verification
VERIFY_RESULTS: Final = ("ok", "broken")
#: the PostgreSQL lock pool's connections: held by writes in flight, and the pool's size
LOCK_POOL_STATES: Final = ("in_use", "max")
LOCK_WAITS: Final = tuple(wait.value for wait in LockWait)
#: results of one run of the expiry job (service/retention.py)
EXPIRY_RESULTS: Final = ("ran", "skipped", "failed")

_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_AUDIT_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The gateway's metrics; one instance per application, held under an AppKey."""

    def __init__(
        self, registry: CollectorRegistry, systems: Iterable[str] = SHIPPED
    ) -> None:
        self.registry = registry
        self.systems = tuple(systems)
        self._system_labels = frozenset((*self.systems, NO_SYSTEM, UNKNOWN_SYSTEM))
        self._routes: frozenset[str] | None = None
        # the children of the per-request series, by their raw labels: built once, then
        # only incremented (the label checks and the library's lookup are not repeated)
        self._request_children: dict[tuple[str, str, int], tuple[Increments, Observes]] = {}
        #: an answer's children and access-line facts by (route, system, status)
        self.answer_facts = AnswerFactsCache(self.request_children)
        self._upstream_children: dict[
            tuple[str, str, int | None], tuple[Increments, Observes]
        ] = {}
        self._decision_children: dict[tuple[str, object, object], Increments] = {}
        self._masked_children: dict[str, Increments] = {}
        # the kept children of those series count here between collections, with one
        # process (service/metric_tally.py); registered first, so it runs first
        self._tally = Tally(enabled=not multiproc.enabled())
        registry.register(self._tally)
        r = registry
        self.requests_total = Counter(
            f"{PREFIX}http_requests", "HTTP requests answered, by system, route template "
            "and status", ["system", "route", "status"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            f"{PREFIX}http_request_duration_seconds", "Time to answer an HTTP request",
            ["system", "route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.decisions_total = Counter(
            f"{PREFIX}decisions", "Change decisions by system, outcome and problem code "
            "('none' unless denied)", ["system", "outcome", "code"], registry=r,
        )  # fmt: skip
        self.validation_errors_total = Counter(
            f"{PREFIX}validation_errors", "Field validation errors by system and field code",
            ["system", "code"], registry=r,
        )  # fmt: skip
        self.masked_total = Counter(
            f"{PREFIX}masked_values", "Values masked in answers, by masking strategy",
            ["strategy"], registry=r,
        )  # fmt: skip
        self.upstream_total = Counter(
            f"{PREFIX}upstream_requests", "HTTP attempts to upstreams by system, method and "
            "status ('no_response' when none came)", ["system", "method", "status"], registry=r,
        )  # fmt: skip
        self.upstream_seconds = Histogram(
            f"{PREFIX}upstream_request_duration_seconds", "Duration of one upstream attempt",
            ["system", "method"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.audit_append_seconds = Histogram(
            f"{PREFIX}audit_append_duration_seconds", "Time for one audit append to be durable",
            buckets=_AUDIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.audit_batch_entries = Histogram(
            f"{PREFIX}audit_batch_entries", "Entries committed together in one audit batch",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.audit_batch_seconds = Histogram(
            f"{PREFIX}audit_batch_duration_seconds", "Time to commit one audit batch",
            buckets=_AUDIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.audit_lock_connections = Gauge(
            f"{PREFIX}audit_lock_connections", "PostgreSQL dedicated lock connections: "
            "'in_use' (each by a write waiting for or holding a customer lock another "
            "replica held; an uncontended lock takes none) and 'max' (0 and 0 on SQLite)",
            ["state"],
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.audit_lock_timeouts_total = Counter(
            f"{PREFIX}audit_lock_timeouts", "Writes answered 503 because a customer's lock "
            "could not be had in time, by what they waited for ('subject': another write "
            "to the customer; 'connection': a free lock connection)", ["wait"], registry=r,
        )  # fmt: skip
        self.breaker = Gauge(
            f"{PREFIX}upstream_circuit_state", "Circuit breaker per upstream: "
            "0 closed, 1 half_open, 2 open", ["system"], registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.policy_reloads_total = Counter(
            f"{PREFIX}policy_reload", "Policy set reloads by result: a refused set leaves "
            "the one in force unchanged", ["result"], registry=r,
        )  # fmt: skip
        self.policy_last_reload_successful = Gauge(
            f"{PREFIX}policy_last_reload_successful", "1 if the last policy load succeeded, "
            "0 while the files on disk are a set that was refused", registry=r,
            multiprocess_mode="livemin",
        )  # fmt: skip
        self.policy_info = Info(
            f"{PREFIX}policy", "The policy version in force, per system (one series each)",
            ["system"], registry=r,
        )  # fmt: skip
        self.audit_store_up = Gauge(
            f"{PREFIX}audit_store_up", "1 when the audit store answered its last check "
            "(start-up, /readyz), 0 when it did not", registry=r,
            multiprocess_mode="livemin",
        )  # fmt: skip
        self.audit_verifications_total = Counter(
            f"{PREFIX}audit_verifications", "Chain verifications run by this process, by "
            "result (ok, broken)", ["result"], registry=r,
        )  # fmt: skip
        self.intents_reconciled_total = Counter(
            f"{PREFIX}audit_intents_reconciled", "Audit intents found without an outcome "
            "(left dangling by a process that died) and closed by reconciliation", registry=r,
        )  # fmt: skip
        self.audit_values_expired_total = Counter(
            f"{PREFIX}audit_values_expired", "Sealed values made unreadable because their "
            "retention period ended (their keys destroyed by the expiry job)", registry=r,
        )  # fmt: skip
        self.audit_expiry_runs_total = Counter(
            f"{PREFIX}audit_expiry_runs", "Runs of the expiry job by result ('skipped': "
            "another replica held the job)", ["result"], registry=r,
        )  # fmt: skip
        self._oldest_sealed: float | None = None
        self.audit_oldest_sealed_value_age_seconds = Gauge(
            f"{PREFIX}audit_oldest_sealed_value_age_seconds", "Age of the oldest sealed value "
            "the audit log can still open, as of the last expiry run (0: none)", registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        #: gauges read by a function at each scrape (written to the shared files by
        #: :meth:`sample` with several workers: service/multiproc.py)
        self._sampled: list[tuple[Gauge, Callable[[], float]]] = []
        self._sample(self.audit_oldest_sealed_value_age_seconds, self._oldest_sealed_age)
        self._preinitialise()

    def _preinitialise(self) -> None:
        for system in self.systems:
            for outcome in (Verdict.ALLOWED, Verdict.DRY_RUN):
                self.decisions_total.labels(system, outcome, NO_PROBLEM)
            for problem in Problem:
                self.decisions_total.labels(system, Verdict.DENIED, problem)
            for field_code in VALIDATION_CODES:
                self.validation_errors_total.labels(system, field_code)
            for method in ("GET", "PUT", "PATCH"):
                self.upstream_seconds.labels(system, method)
                self.upstream_total.labels(system, method, "200")
            self.breaker.labels(system).set(0)
        for strategy in STRATEGIES:
            self.masked_total.labels(strategy)
        for result in RELOAD_RESULTS:
            self.policy_reloads_total.labels(result)
        for result in VERIFY_RESULTS:
            self.audit_verifications_total.labels(result)
        for state in LOCK_POOL_STATES:
            self.audit_lock_connections.labels(state).set(0)
        for wait in LOCK_WAITS:
            self.audit_lock_timeouts_total.labels(wait)
        for result in EXPIRY_RESULTS:
            self.audit_expiry_runs_total.labels(result)

    def init_routes(self, routes: Iterable[str]) -> None:
        """Declare the route templates: their series start at 0 and any other route is
        recorded as ``other``. Templates containing ``{system}`` get one series per system."""
        routes = tuple(routes)
        self._routes = frozenset(routes)
        self._request_children.clear()  # (their tallies stay, moved at each collection)
        self.answer_facts.clear()
        for route in routes:
            systems = self.systems if "{system}" in route else (NO_SYSTEM,)
            for system in systems:
                self.requests_total.labels(system, route, "200")
                self.request_seconds.labels(system, route)

    # -- bounded label values ----------------------------------------------------------

    def _system(self, system: str) -> str:
        return system if system in self._system_labels else UNKNOWN_SYSTEM

    def _route(self, route: str) -> str:
        if route == UNMATCHED:
            return route
        if self._routes is not None:
            return route if route in self._routes else OTHER
        return route if route.startswith("/") and len(route) <= 120 else OTHER

    # -- recording ---------------------------------------------------------------------

    def request(self, system: str, route: str, status: int, seconds: float) -> None:
        """One answered request: ``route`` is the template (``/v1/systems/{system}/...``)."""
        count, duration = self.request_children(system, route, status)
        count.inc()
        duration.observe(max(0.0, seconds))

    def request_children(self, system: str, route: str, status: int) -> tuple[Increments, Observes]:
        """The children an answered request counts in (its count, its duration)."""
        key = (system, route, status)
        children = self._request_children.get(key)
        if children is None:
            system, route = self._system(system), self._route(route)
            children = (
                self.requests_total.labels(system, route, _status(status)),
                self.request_seconds.labels(system, route),
            )
            if len(self._request_children) < _CHILDREN_KEPT:
                children = self._request_children[key] = self._tally.pair(*children)
        return children

    def decision(self, system: str, outcome: Verdict, problem_code: Problem | None) -> None:
        """A change decided: ``allowed``, ``denied`` (with its problem code) or ``dry_run``.
        mypy checks both are of their vocabulary; a value that is not (an untyped caller)
        still never becomes a label of its own."""
        key = (system, outcome, problem_code)
        child = self._decision_children.get(key)
        if child is None:
            verdict = parse(Verdict, outcome) or OTHER
            code = NO_PROBLEM if problem_code is None else parse(Problem, problem_code) or OTHER
            child = self.decisions_total.labels(self._system(system), verdict, code)
            if len(self._decision_children) < _CHILDREN_KEPT:
                child = self._decision_children[key] = self._tally.counter(child)
        child.inc()

    def validation_errors(self, system: str, codes: Iterable[str]) -> None:
        system = self._system(system)
        for code in codes:
            label = code if code in FIELD_CODES else OTHER
            self.validation_errors_total.labels(system, label).inc()

    def masked(self, counts: Mapping[str, int]) -> None:
        """Values masked, by strategy name (one answer's counts)."""
        for strategy, count in counts.items():
            if count > 0:
                child = self._masked_children.get(strategy)
                if child is None:
                    label = strategy if strategy in STRATEGIES else OTHER
                    child = self.masked_total.labels(label)
                    if len(self._masked_children) < _CHILDREN_KEPT:
                        child = self._masked_children[strategy] = self._tally.counter(child)
                child.inc(count)

    def upstream(self, system: str, method: str, status: int | None, seconds: float) -> None:
        """One upstream HTTP attempt; fits the connectors' ``observe`` callback."""
        key = (system, method, status)
        children = self._upstream_children.get(key)
        if children is None:
            system = self._system(system)
            method = method.upper() if method.upper() in UPSTREAM_METHODS else OTHER
            label = NO_RESPONSE if status is None else _status(status)
            children = (
                self.upstream_total.labels(system, method, label),
                self.upstream_seconds.labels(system, method),
            )
            if len(self._upstream_children) < _CHILDREN_KEPT:
                children = self._upstream_children[key] = self._tally.pair(*children)
        children[0].inc()
        children[1].observe(max(0.0, seconds))

    def audit_batch(self, size: int, seconds: float) -> None:
        """One committed audit batch; fits the audit log's ``on_batch`` callback."""
        self.audit_batch_entries.observe(size)
        self.audit_batch_seconds.observe(max(0.0, seconds))

    def audit_append(self, seconds: float) -> None:
        self.audit_append_seconds.observe(max(0.0, seconds))

    def policy_reload(self, succeeded: bool) -> None:
        """One attempt to load a policy set (at start, on a file change, on SIGHUP)."""
        self.policy_reloads_total.labels(RELOAD_RESULTS[0 if succeeded else 1]).inc()
        self.policy_last_reload_successful.set(1 if succeeded else 0)

    def policy_versions(self, versions: Mapping[str, str]) -> None:
        """The versions now in force: one series per system, replaced on every swap."""
        for system, version in versions.items():
            self.policy_info.labels(self._system(system)).info({"version": version})

    def audit_store(self, up: bool) -> None:
        """The store answered a check (``True``) or did not."""
        self.audit_store_up.set(1 if up else 0)

    def audit_verified(self, ok: bool) -> None:
        """One chain verification finished: intact, or broken."""
        self.audit_verifications_total.labels("ok" if ok else "broken").inc()

    def intents_reconciled(self, count: int) -> None:
        """Dangling intents closed by one reconciliation pass."""
        if count > 0:
            self.intents_reconciled_total.inc(count)

    def watch_audit_locks(self, lock_use: Callable[[], tuple[int, int]]) -> None:
        """Read the lock pool's use at each scrape: ``lock_use() -> (in use, max)``."""
        self._sample(self.audit_lock_connections.labels("in_use"), lambda: lock_use()[0])
        self._sample(self.audit_lock_connections.labels("max"), lambda: lock_use()[1])

    def _sample(self, gauge: Gauge, read: Callable[[], float]) -> None:
        gauge.set_function(read)
        self._sampled.append((gauge, read))

    def sample(self) -> None:
        """Write the function gauges' values (needed only when the values live in files
        shared by workers, where a function is not read at scrape time)."""
        for gauge, read in self._sampled:
            gauge.set(read())

    def audit_lock_timeout(self, wait: str) -> None:
        """A customer's lock given up; fits the audit log's ``on_lock_timeout`` callback."""
        label = wait if wait in LOCK_WAITS else OTHER
        self.audit_lock_timeouts_total.labels(label).inc()

    def audit_expiry(self, result: str, values: int = 0, oldest_sealed: str | None = None) -> None:
        """One run of the expiry job: its result, the values it made unreadable, and when
        the oldest value still readable was sealed (ISO 8601; None: no sealed value)."""
        self.audit_expiry_runs_total.labels(result if result in EXPIRY_RESULTS else OTHER).inc()
        if values > 0:
            self.audit_values_expired_total.inc(values)
        if result in ("ran", "skipped"):  # a failed run read nothing
            self._oldest_sealed = (
                datetime.fromisoformat(oldest_sealed.replace("Z", "+00:00")).timestamp()
                if oldest_sealed
                else None
            )

    def _oldest_sealed_age(self) -> float:
        if self._oldest_sealed is None:
            return 0.0
        return max(0.0, time.time() - self._oldest_sealed)

    def breaker_state(self, system: str, state: str) -> None:
        """The breaker's state: closed=0, half_open=1, open=2 (``half-open`` accepted)."""
        value = BREAKER_STATES.get(state.replace("-", "_").lower())
        if value is None:
            raise ValueError(f"unknown breaker state {state!r}; valid: {', '.join(BREAKER_STATES)}")
        self.breaker.labels(self._system(system)).set(value)


def _status(status: int) -> str:
    return str(status) if 100 <= status <= 599 else OTHER


def metrics_handler(metrics: Metrics) -> Handler:
    """``GET /metrics``: the library's own aiohttp handler over these metrics - or, with
    several workers, over every worker's (service/multiproc.py)."""
    if not multiproc.enabled():
        plain = make_aiohttp_handler(metrics.registry)

        async def this_process(request: web.Request) -> web.StreamResponse:
            # a scrape restricted by name[] does not run the tally's collector
            metrics._tally.flush()
            return await plain(request)

        return this_process
    handler = make_aiohttp_handler(multiproc.exposition_registry(metrics.registry))

    async def every_worker(request: web.Request) -> web.StreamResponse:
        metrics.sample()
        return await handler(request)

    return every_worker
