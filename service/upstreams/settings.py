"""Settings of one upstream connection, as ``service.config`` loads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.secret import Secret


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How to reach one upstream.

    ``credentials`` (all secret) and ``options`` (not secret) hold what the system's
    ``Credentials`` and ``Options`` models declare, next to its connector (the models
    ``service.registry`` names). The defaults here are the configuration's defaults
    (``service.config_model`` takes them from this class).
    """

    system: str
    base_url: str
    credentials: Mapping[str, Secret] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 3.0
    max_retries: int = 2
    rate_limit_per_second: float | None = None
    rate_limit_burst: int = 1
    backoff_max_seconds: float = 8.0
    breaker_failure_threshold: int = 5
    breaker_reset_seconds: float = 30.0
