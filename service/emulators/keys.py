"""Typed application keys of an emulator app (in-process tests read the store here)."""

from __future__ import annotations

from aiohttp import web

from service.emulators.faults import FaultState
from service.emulators.ratelimit import RateLimiter
from service.emulators.spec import SystemSpec
from service.emulators.stats import Stats
from service.emulators.store import CustomerStore

STORE_KEY = web.AppKey("emulator_store", CustomerStore)
STATS_KEY = web.AppKey("emulator_stats", Stats)
FAULTS_KEY = web.AppKey("emulator_faults", FaultState)
LIMITER_KEY = web.AppKey("emulator_rate_limiter", RateLimiter)
SPEC_KEY = web.AppKey("emulator_system", SystemSpec)
