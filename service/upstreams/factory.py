"""``build_connector``: the connector class for a system, from its settings."""

from __future__ import annotations

from typing import Final

from service.upstreams.base import Connector, Observe
from service.upstreams.billbee import BillbeeConnector
from service.upstreams.keycom import KeycomConnector
from service.upstreams.sedona import SedonaConnector
from service.upstreams.settings import UpstreamSettings
from service.upstreams.timelog import TimelogConnector
from service.upstreams.transport import HttpConnector

CONNECTOR_CLASSES: Final[dict[str, type[HttpConnector]]] = {
    "timelog": TimelogConnector,
    "billbee": BillbeeConnector,
    "sedona": SedonaConnector,
    "keycom": KeycomConnector,
}


def build_connector(settings: UpstreamSettings, *, observe: Observe | None = None) -> Connector:
    """The connector for ``settings.system``. Its ``ClientSession`` is opened on first
    use (inside the running loop) and closed by ``close()``.

    ``ValueError`` for an unknown system or missing credentials (names, never values).
    """
    try:
        cls = CONNECTOR_CLASSES[settings.system]
    except KeyError:
        known = ", ".join(CONNECTOR_CLASSES)
        raise ValueError(f"unknown upstream system {settings.system!r}; known: {known}") from None
    return cls(settings, observe=observe)
