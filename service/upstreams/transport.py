"""What every HTTP connector shares: the connection pool, attempts, retries, pacing, the breaker,
and the mapping of upstream answers to the domain's exceptions.

The retry policy (what is sent again after which failure, after what delay, and why a
write that may have reached the upstream never is) is :mod:`service.upstreams.retry`: a
table and a pure decision that the call loop asks once per failed attempt. One HTTP
exchange, and the fate of a failed one, is :mod:`service.upstreams.exchange`. Each
connector makes at most ``1 + max_retries`` attempts per call and kind of failure (429s
are counted apart). The HTTP client is :mod:`service.upstreams.client` (one keep-alive
pool per connector). Nothing of the client leaves this package:
every failure becomes a ``service.errors`` exception raised ``from None``, whose message
names the system and the kind of failure, never a value, an id or a credential.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

from yarl import URL

from service import json_codec
from service.errors import (
    CircuitOpen,
    FieldProblem,
    GatewayError,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
)
from service.upstreams.answers import (
    REJECTED_STATUSES,
    Answer,
    error_for_status,
)
from service.upstreams.base import Mode, Observe, content_tag
from service.upstreams.breaker import CircuitBreaker
from service.upstreams.bucket import TokenBucket
from service.upstreams.client import POOL_LIMIT, Pool
from service.upstreams.exchange import AttemptFailed, exchange
from service.upstreams.problems import field_problems
from service.upstreams.retry import STATUS_FATES, Fate, RetryPolicy, next_step
from service.upstreams.settings import UpstreamSettings

log = logging.getLogger(__name__)

#: pace at this share of an upstream's limit: it counts arrivals, and network jitter can
#: bring two requests closer together than they were sent
PACING_MARGIN = 0.9
#: the Content-Type of a request with a body (always JSON, encoded before the call)
JSON_CONTENT_TYPE = "application/json"
T = TypeVar("T")


#: a relative path whose join to a base URL ending in ``/`` is the two side by side:
#: segments of unreserved characters (RFC 3986), none empty, none a dot segment (none
#: starts with a dot), no query, fragment or percent-escape
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?")


def request_target(base_url: URL, path: str) -> str:
    """The request target of ``path`` relative to ``base_url`` (whose path ends in ``/``
    and which has no query): ``base_url.join(URL(path)).raw_path_qs``, without yarl's
    parse and join (~6 us a call) when ``path`` is a plain one, as every connector's is."""
    if _PLAIN_PATH.fullmatch(path) is not None:
        return base_url.raw_path + path
    return base_url.join(URL(path)).raw_path_qs


class HttpConnector(ABC):
    """Base of the four connectors. Subclasses set the class attributes and implement
    ``fetch``/``apply`` with :meth:`_call`, plus ``_auth`` for their credentials."""

    system: str = ""
    mode: Mode = "put"
    #: re-read before the write (the edit-conflict check); a system whose write cannot
    #: overwrite a field it does not send may turn it off (docs/upstreams.md)
    conflict_reread: bool = True
    read_coverage: frozenset[str] = frozenset()
    #: credential keys ``settings.credentials`` must hold
    required_credentials: ClassVar[tuple[str, ...]] = ()
    #: connections open to the upstream at most (aiohttp's default, as before)
    pool_limit: int = POOL_LIMIT

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        observe: Observe | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` verifies an https upstream (default: the system's CAs, with
        hostname checks); a test passes one trusting its own CA."""
        missing = [k for k in self.required_credentials if not settings.credentials.get(k)]
        if missing:
            raise ValueError(f"{self.system}: missing credentials: {', '.join(sorted(missing))}")
        if settings.timeout_seconds <= 0 or settings.connect_timeout_seconds <= 0:
            raise ValueError(f"{self.system}: timeouts must be positive")
        if settings.max_retries < 0:
            raise ValueError(f"{self.system}: max_retries must not be negative")
        if settings.backoff_max_seconds < 0:
            raise ValueError(f"{self.system}: backoff_max_seconds must not be negative")
        url = URL(settings.base_url)
        if url.scheme not in ("http", "https") or not url.host or url.user or url.query_string:
            # the URL itself is not repeated: it might carry a user name or password
            raise ValueError(
                f"{self.system}: base_url must be an http(s) URL with a host and without "
                "credentials or a query"
            )
        self.settings = settings
        self._auth()  # refuse unusable credentials now, not at the first call
        self._check_options()
        self.breaker = CircuitBreaker(
            self.system,
            threshold=settings.breaker_failure_threshold,
            reset_seconds=settings.breaker_reset_seconds,
        )
        self._retry = RetryPolicy(settings.max_retries, settings.backoff_max_seconds)
        self._observe = observe
        self._sleep = sleep
        self._base_url = URL(
            settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        )
        self._ssl_context = ssl_context
        self._pool: Pool | None = None
        self._closed = False
        self._buckets: dict[str, TokenBucket] = {}
        #: the bucket of each (method, route) pair, ``None`` when not paced: found once,
        #: not by ``_bucket_key`` on every call (routes are templates: a few pairs)
        self._pacers: dict[tuple[str, str], TokenBucket | None] = {}
        rate = self._pacing_rate()
        if rate is not None and not (rate > 0 and settings.rate_limit_burst >= 1):
            raise ValueError(
                f"{self.system}: rate_limit_per_second must be > 0 and rate_limit_burst >= 1"
            )

    # -- the interface, per system ----------------------------------------------------

    @abstractmethod
    async def fetch(self, customer_id: str) -> dict[str, Any]:
        """The upstream record, in the policy's field names."""

    @abstractmethod
    async def apply(self, customer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send ``body`` (the patch, or the merged whole object); the record as answered."""

    # -- hooks for subclasses ---------------------------------------------------------

    @abstractmethod
    def _auth(self) -> dict[str, str]:
        """Headers carrying this system's credentials (built when the pool opens)."""

    def _check_options(self) -> None:
        """Refuse unusable ``settings.options`` with a ``ValueError`` (names, no values).
        By default a system takes no options."""
        return None

    def _bucket_key(self, method: str, route: str) -> str | None:
        """Which pacing bucket a call draws from; ``None``: not paced. By default one
        bucket for every call when a rate is configured. Asked once per (method, route)
        pair (``_pacer`` keeps the answer): it must depend on nothing else."""
        return "all" if self._pacing_rate() is not None else None

    def _pacing_rate(self) -> float | None:
        """Calls per second a bucket lets through (``None``: no pacing):
        ``PACING_MARGIN`` of the upstream's limit, ``rate_limit_per_second``."""
        limit = self.settings.rate_limit_per_second
        return None if limit is None else limit * PACING_MARGIN

    @property
    def known_fields(self) -> frozenset[str]:
        """Every top-level field name of the system (read and write models)."""
        return self.read_coverage

    def _problems(self, answer: Answer) -> list[FieldProblem]:
        """Fields the upstream named in a 400/422 (names only, never values)."""
        return field_problems(answer.body, known=self.known_fields)

    def _special_error(self, answer: Answer) -> GatewayError | None:
        """A system-specific reading of an error answer, before the generic mapping."""
        return None

    # -- the shared parts -------------------------------------------------------------

    def version_tag(self, record: Mapping[str, Any]) -> str:
        return content_tag(record)

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _get_pool(self) -> Pool:
        if self._closed:
            raise UpstreamError(f"{self.system}: connector is closed")
        if self._pool is None:
            headers = self._auth()
            headers.setdefault("Accept", "application/json")
            # some API front ends refuse a request without one (aiohttp sent its own)
            headers.setdefault("User-Agent", "gdpr-gateway")
            self._pool = Pool(
                self._base_url,
                headers,
                connect_timeout=self.settings.connect_timeout_seconds,
                total_timeout=self.settings.timeout_seconds,
                ssl_context=self._ssl_context,
                limit=self.pool_limit,
            )
        return self._pool

    def _pacer(self, method: str, route: str) -> TokenBucket | None:
        """The bucket a call of ``method`` on ``route`` draws from (``None``: not paced)."""
        pair = (method, route)
        try:
            return self._pacers[pair]
        except KeyError:
            key = self._bucket_key(method, route)
            pacer = self._pacers[pair] = None if key is None else self._bucket(key)
            return pacer

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = self._pacing_rate()
            if rate is None:
                raise ValueError(f"{self.system}: pacing asked for without a rate")
            bucket = TokenBucket(rate, self.settings.rate_limit_burst, sleep=self._sleep)
            self._buckets[key] = bucket
        return bucket

    def _pacing_floor(self) -> float:
        """The pacing interval: the shortest wait after a 429 (0 without pacing)."""
        rate = self._pacing_rate()
        return 1.0 / rate if rate else 0.0

    async def _call(
        self,
        method: str,
        path: str,
        *,
        route: str,
        body: Any = None,
    ) -> Answer:
        """Send one logical request; return a 2xx answer or raise a domain error. After
        each failed attempt :func:`~service.upstreams.retry.next_step` decides: send again
        after a delay, or stop. ``path`` is relative to ``base_url``; ``route`` is its
        template (no ids) for logs and pacing."""
        retries = {False: 0, True: 0}  # failures and 429s are counted apart
        last: GatewayError | None = None
        # Once per call, not per attempt: the body's bytes, the request target, the pacer.
        data = None if body is None else json_codec.dump_bytes(body)
        content_type = None if body is None else JSON_CONTENT_TYPE
        target = request_target(self._base_url, path)
        pacer = self._pacer(method, route)
        while True:
            self._admit(last)
            try:
                if pacer is not None:
                    wait = pacer.reserve()  # TokenBucket.acquire without its coroutine
                    if wait > 0:
                        await self._sleep(wait)
                answer = await exchange(
                    self._get_pool(), self.system, method, target, data, content_type,
                    self._report,
                )  # fmt: skip
            except AttemptFailed as failed:
                self.breaker.record_failure()
                failure = failed
            except BaseException:
                self.breaker.release()
                raise
            else:
                if 200 <= answer.status < 300:  # what _judge tells of a 2xx, without a call
                    self.breaker.record_success()
                    return answer
                judged = self._judge(method, answer)
                if judged is None:
                    return answer
                failure = judged
            rate_limited = failure.fate is Fate.RATE_LIMITED
            floor = self._pacing_floor() if rate_limited else 0.0
            step = next_step(
                self._retry, failure.fate, method, retries[rate_limited],
                jitter=random.random(), retry_after=failure.retry_after, floor=floor,
            )  # fmt: skip
            if not step.retry:
                if rate_limited:
                    raise UpstreamRateLimited(
                        f"{self.system}: upstream rate limit persists",
                        upstream_status=429,
                        retry_after=max(step.delay, floor, 1.0),
                    )
                raise failure.error from None
            if not rate_limited:
                last = failure.error
            retries[rate_limited] += 1
            log.warning(
                "upstream %s %s %s %s, retry %d in %.2fs",
                self.system, method, route, failure.cause, retries[rate_limited], step.delay,
            )  # fmt: skip
            await self._sleep(step.delay)

    def _admit(self, last: GatewayError | None) -> None:
        """Ask the breaker for an attempt; refused: the last attempt's error, if any."""
        if self.breaker.allow():
            return
        if last is not None:
            raise last
        raise CircuitOpen(
            f"{self.system}: circuit open, upstream not called",
            retry_after=self.breaker.retry_after() or None,
        )

    def _judge(self, method: str, answer: Answer) -> AttemptFailed | None:
        """Read an answer and tell the breaker what it shows: ``None`` for a 2xx, a
        failure for the retry policy (a server failure, a 429); any other error answer
        raises its domain error."""
        error = self._error_for(answer) if answer.status >= 400 else None
        if answer.status >= 500 and type(error) is UpstreamError:
            # A server failure (not a domain answer some upstreams send as a 500,
            # such as TimeLog's "customer not found").
            self.breaker.record_failure()
            fate = STATUS_FATES.get(answer.status, Fate.FAILED)
            if fate is Fate.MAYBE_APPLIED and method != "GET":
                error = UpstreamOutcomeUnknown(
                    f"{self.system}: a gateway in front of the upstream answered"
                    f" {answer.status}; outcome unknown",
                    upstream_status=answer.status,
                )
            return AttemptFailed(error, fate, cause=f"answered {answer.status}")
        # Any other answer shows the upstream is alive.
        self.breaker.record_success()
        if answer.status == 429:
            given = "given" if answer.retry_after is not None else "absent"
            return AttemptFailed(
                error or self._malformed(429),
                Fate.RATE_LIMITED,
                cause=f"answered 429 (retry-after {given})",
                retry_after=answer.retry_after,
            )
        if error is not None:
            raise error
        if answer.status < 200 or answer.status >= 300:
            raise UpstreamError(
                f"{self.system}: unexpected answer status", upstream_status=answer.status
            )
        return None

    def _written(self, answer: Answer, read: Callable[[Answer], T]) -> T:
        """Read a write's 2xx answer with ``read``; an answer that cannot be read (wrong
        shape, an error code inside a success, another customer's record) leaves the
        write's outcome unknown rather than failed."""
        try:
            return read(answer)
        except UpstreamError as exc:
            raise UpstreamOutcomeUnknown(
                f"{exc.detail}; the upstream accepted the write, outcome unknown",
                upstream_status=answer.status,
            ) from None

    def _report(self, method: str, status: int | None, seconds: float) -> None:
        observe = self._observe
        if observe is None:
            return
        try:
            observe(self.system, method, status, seconds)
        except Exception:  # a broken metrics hook must not break a customer write
            log.exception("observe hook failed for upstream %s", self.system)

    def _error_for(self, answer: Answer) -> GatewayError:
        """The domain error for an error answer (status >= 400)."""
        special = self._special_error(answer)
        if special is not None:
            return special
        problems = self._problems(answer) if answer.status in REJECTED_STATUSES else []
        return error_for_status(self.system, answer, problems)

    def _malformed(self, status: int = 200) -> UpstreamError:
        return UpstreamError(
            f"{self.system}: malformed answer from the upstream", upstream_status=status
        )

    def _record_of(self, value: object, id_key: str, status: int) -> dict[str, Any]:
        """A record as the upstream sent it, with its ``id_key``: this call's own parsed
        dict as it is (no copy, no ABC check), another mapping copied; else malformed."""
        if type(value) is dict:
            if id_key in value:
                return value
        elif isinstance(value, Mapping) and id_key in value:
            return dict(value)
        raise self._malformed(status)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(system={self.system!r}, breaker={self.breaker.state!r})"
