"""Fixtures: each emulator served on loopback through pytest-aiohttp's test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.emulators import DEMO_CREDENTIALS, create_emulator

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]

TIMELOG_AUTH = {"Authorization": f"Bearer {DEMO_CREDENTIALS['timelog']['token']}"}
BILLBEE_AUTH = {
    "X-Billbee-Api-Key": DEMO_CREDENTIALS["billbee"]["api_key"],
    "Authorization": aiohttp.encode_basic_auth(
        DEMO_CREDENTIALS["billbee"]["username"], DEMO_CREDENTIALS["billbee"]["password"]
    ),
}
SEDONA_AUTH = {
    "Authorization": aiohttp.encode_basic_auth(
        DEMO_CREDENTIALS["sedona"]["username"], DEMO_CREDENTIALS["sedona"]["password"]
    )
}
KEYCOM_AUTH = {"Authorization": f"Token {DEMO_CREDENTIALS['keycom']['token']}"}


@pytest.fixture
async def timelog(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_emulator("timelog"))


@pytest.fixture
async def billbee(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_emulator("billbee", rate_limit=False))


@pytest.fixture
async def sedona(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_emulator("sedona"))


@pytest.fixture
async def keycom(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_emulator("keycom"))
