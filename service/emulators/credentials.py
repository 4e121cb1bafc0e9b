"""The demo credentials of the emulated upstreams (published in docs/API.md "Demo data")."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEMO_CREDENTIALS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "timelog": MappingProxyType({"token": "demo-timelog-token", "account": "demo"}),
    "billbee": MappingProxyType({
        "api_key": "demo-billbee-key", "username": "demo", "password": "demo-billbee-password",
    }),
    "sedona": MappingProxyType({"username": "demo", "password": "demo-sedona-password"}),
    "keycom": MappingProxyType({"token": "0123456789abcdef0123456789abcdef01234567"}),
})
