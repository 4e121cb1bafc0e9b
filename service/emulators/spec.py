"""What makes one emulated system: its data and its routes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """One upstream: seed records, the record generator, routes and error format.

    ``error`` builds a response in the system's own error format for a status and a
    message (used by the status fault and unknown routes). ``credentials`` are the ones
    it accepts (published: docs/upstreams.md), under the names of the gateway's
    ``upstreams.<system>.credentials``; ``options`` the gateway's options that reach it
    (TimeLog's account); ``rate_limit_per_second`` the limit it enforces, if any (the
    demo's client paces at it).
    """

    name: str
    seed: Callable[[], Mapping[int, Record]]
    generate: Callable[[int], Record]
    add_routes: Callable[[web.Application], None]
    error: Callable[[int, str], web.Response]
    credentials: Mapping[str, str]
    options: Mapping[str, str] = field(default_factory=dict)
    rate_limit_per_second: int | None = None
