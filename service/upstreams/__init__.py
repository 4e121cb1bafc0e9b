"""Connectors to the upstream systems, behind one interface (``Connector``); which class
serves which system is ``service.registry``."""

from __future__ import annotations

from service.upstreams.base import (
    Connector,
    Mode,
    Observe,
    content_tag,
    parse_customer_id,
    record_shows,
)
from service.upstreams.breaker import BreakerState, CircuitBreaker
from service.upstreams.bucket import TokenBucket
from service.upstreams.settings import UpstreamSettings

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Connector",
    "Mode",
    "Observe",
    "TokenBucket",
    "UpstreamSettings",
    "content_tag",
    "parse_customer_id",
    "record_shows",
]
