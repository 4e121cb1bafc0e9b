"""Fixtures: each emulator served on loopback through pytest-aiohttp's test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.emulators import billbee as billbee_emulator
from service.emulators import create_emulator
from service.emulators import keycom as keycom_emulator
from service.emulators import sedona as sedona_emulator
from service.emulators import timelog as timelog_emulator

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]

TIMELOG_AUTH = {"Authorization": f"Bearer {timelog_emulator.CREDENTIALS['token']}"}
BILLBEE_AUTH = {
    "X-Billbee-Api-Key": billbee_emulator.CREDENTIALS["api_key"],
    "Authorization": aiohttp.encode_basic_auth(
        billbee_emulator.CREDENTIALS["username"], billbee_emulator.CREDENTIALS["password"]
    ),
}
SEDONA_AUTH = {
    "Authorization": aiohttp.encode_basic_auth(
        sedona_emulator.CREDENTIALS["username"], sedona_emulator.CREDENTIALS["password"]
    )
}
KEYCOM_AUTH = {"Authorization": f"Token {keycom_emulator.CREDENTIALS['token']}"}


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
