"""Faithful stand-ins for the four upstream customer APIs (demo, tests, benchmarks).

See docs/upstreams.md for every emulated behaviour and every assumption.
"""

from __future__ import annotations

from service.emulators.app import SYSTEMS, create_emulator, is_loopback_peer, reset_emulator
from service.emulators.cluster import EmulatorCluster
from service.emulators.credentials import DEMO_CREDENTIALS
from service.emulators.faults import FaultPlan, FaultPlanError
from service.emulators.keys import FAULTS_KEY, LIMITER_KEY, STATS_KEY, STORE_KEY
from service.emulators.stats import Stats
from service.emulators.store import CustomerStore

__all__ = [
    "DEMO_CREDENTIALS",
    "FAULTS_KEY",
    "LIMITER_KEY",
    "STATS_KEY",
    "STORE_KEY",
    "SYSTEMS",
    "CustomerStore",
    "EmulatorCluster",
    "FaultPlan",
    "FaultPlanError",
    "Stats",
    "create_emulator",
    "is_loopback_peer",
    "reset_emulator",
]
