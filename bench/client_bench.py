"""The upstream client alone: CPU per keycom change (GET + PATCH) through the connector.

    python -m bench.client_bench [--changes 2000] [--concurrency 8] [--rounds 3]

Starts the emulators (``gdpr-gateway emulate --no-rate-limit``) in a process of their
own, then makes ``--changes`` keycom changes, ``--concurrency`` at a time, through
``KeycomConnector`` on uvloop (the lean client: pool, request target, timers, parser,
JSON, breaker, retry loop), ``--rounds`` times. Prints the CPU time of this process
(``time.process_time``) per change for each round: the emulator's CPU is not in it. The
same script runs on any commit since the lean client, so a before and after is two runs
(alternate them: the machine's load moves the figure). Not a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import uvloop

from bench.procs import Emulators
from service.registry import SYSTEMS, build_connector
from service.secret import Secret
from service.upstreams.settings import UpstreamSettings

CUSTOMER = "4001"  # in the emulator's seed data


def _settings(base_url: str) -> UpstreamSettings:
    emulator = SYSTEMS["keycom"].emulator
    return UpstreamSettings(
        system="keycom",
        base_url=base_url,
        credentials={k: Secret(v) for k, v in emulator.credentials.items()},
        options=dict(emulator.options),
        timeout_seconds=10.0,
        connect_timeout_seconds=10.0,
    )


async def _rounds(base_url: str, changes: int, concurrency: int, rounds: int) -> list[float]:
    connector = build_connector(_settings(base_url))
    per_task = max(1, changes // concurrency)

    async def changer(number: int) -> None:
        for i in range(per_task):
            await connector.fetch(CUSTOMER)
            phone = f"+358 40 {1_000_000 + number * per_task + i}"
            await connector.apply(CUSTOMER, {"phone": phone})

    try:
        for _ in range(100):  # warm-up: connections open, code paths hot
            await connector.fetch(CUSTOMER)
        figures = []
        for _ in range(rounds):
            started = time.process_time()
            await asyncio.gather(*(changer(n) for n in range(concurrency)))
            figures.append(1000.0 * (time.process_time() - started) / (per_task * concurrency))
        return figures
    finally:
        await connector.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, Emulators(Path(folder) / "emulators.log") as emu:
        figures = uvloop.run(
            _rounds(emu.urls["keycom"], args.changes, args.concurrency, args.rounds)
        )
    print("keycom change (GET + PATCH), client CPU ms:", " ".join(f"{f:.3f}" for f in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
