"""Connectors to the four upstream systems, behind one interface (``Connector``)."""

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
from service.upstreams.factory import CONNECTOR_CLASSES, build_connector
from service.upstreams.settings import UpstreamSettings

__all__ = [
    "CONNECTOR_CLASSES",
    "BreakerState",
    "CircuitBreaker",
    "Connector",
    "Mode",
    "Observe",
    "TokenBucket",
    "UpstreamSettings",
    "build_connector",
    "content_tag",
    "parse_customer_id",
    "record_shows",
]
