"""Faithful stand-ins for the upstream customer APIs (demo, tests, benchmarks); which
emulator stands for which system is ``service.registry``.

See docs/upstreams.md for every emulated behaviour and every assumption.
"""

from __future__ import annotations

from service.emulators.app import create_emulator, is_loopback_peer, reset_emulator
from service.emulators.cluster import EmulatorCluster, emulators_of
from service.emulators.faults import FaultPlan, FaultPlanError
from service.emulators.keys import FAULTS_KEY, LIMITER_KEY, STATS_KEY, STORE_KEY
from service.emulators.stats import Stats
from service.emulators.store import CustomerStore

__all__ = [
    "FAULTS_KEY",
    "LIMITER_KEY",
    "STATS_KEY",
    "STORE_KEY",
    "CustomerStore",
    "EmulatorCluster",
    "FaultPlan",
    "FaultPlanError",
    "Stats",
    "create_emulator",
    "emulators_of",
    "is_loopback_peer",
    "reset_emulator",
]
