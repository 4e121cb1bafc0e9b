"""The Python work of the upstream calls per change, without the sockets.

    python -m bench.upstream_path_bench [--system keycom|billbee] [--changes 20000]
        [--rounds 5]

A change here is what the gateway asks of the connector: ``fetch`` and then ``apply``
(keycom: GET + PATCH of one field; billbee: GET + PUT of the merged record), 8 at a
time, on uvloop. The answers are the emulator's own bytes, caught once from a real
exchange with ``gdpr-gateway emulate`` (started here in a process of its own); then
every connection of the pool is a fake transport that hands the caught answer back to
the protocol on the next loop turn. What is timed (``time.process_time`` per change,
each round) is thus the connector and the client - URL, pacing, breaker, retry loop,
request bytes, parser callbacks, JSON, the answer's checks - and none of the kernel's
send and receive, which ``bench.client_bench`` includes and which move with the
machine's load. The same script runs on any commit since the pool's ``_acquire``
(``PYTHONPATH=<checkout>``). Not a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.procs import Emulators
from service.registry import SYSTEMS, build_connector
from service.secret import Secret
from service.upstreams import client
from service.upstreams.base import Connector
from service.upstreams.settings import UpstreamSettings

CUSTOMERS = {"keycom": "4001", "billbee": "1002"}  # in the emulators' seed data
CONCURRENCY = 8


def _settings(system: str, base_url: str) -> UpstreamSettings:
    emulator = SYSTEMS[system].emulator
    return UpstreamSettings(
        system=system,
        base_url=base_url,
        credentials={k: Secret(v) for k, v in emulator.credentials.items()},
        options=dict(emulator.options),
        timeout_seconds=10.0,
        connect_timeout_seconds=10.0,
        # paced as in the gateway, at a rate that never waits (as the bench's config)
        rate_limit_per_second=1_000_000.0 if system == "billbee" else None,
    )


async def _change(connector: Connector, system: str, number: int) -> None:
    customer = CUSTOMERS[system]
    record = await connector.fetch(customer)
    phone = f"+358 40 {1_000_000 + number}"
    if system == "keycom":
        await connector.apply(customer, {"phone": phone})
    else:
        await connector.apply(customer, dict(record, Tel1=phone))


async def _catch(system: str, base_url: str) -> list[bytes]:
    """The bytes of a real change's answers, as the connection received them."""
    caught: list[bytes] = []
    received = client._Connection.data_received

    def catch(self: client._Connection, data: bytes) -> None:
        caught.append(data)
        received(self, data)

    client._Connection.data_received = catch  # type: ignore[method-assign]
    connector = build_connector(_settings(system, base_url))
    try:
        await _change(connector, system, 0)
    finally:
        client._Connection.data_received = received  # type: ignore[method-assign]
        await connector.close()
    if len(caught) != 2:
        raise SystemExit(f"expected one segment per answer, got {len(caught)}")
    return caught


class _Echo:
    """A transport whose peer answers every request with the caught answer."""

    def __init__(self, protocol: client._Connection, answers: list[bytes]) -> None:
        self._protocol = protocol
        self._read, self._write = answers
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        answer = self._read if data.startswith(b"GET ") else self._write
        self._loop.call_soon(self._protocol.data_received, answer)

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


async def _rounds(system: str, answers: list[bytes], changes: int, rounds: int) -> list[float]:
    connector = build_connector(_settings(system, "http://127.0.0.1:9/"))
    pool = connector._get_pool()  # type: ignore[attr-defined]

    async def acquire() -> client._Connection:
        conn = client._Connection()
        conn.connection_made(_Echo(conn, answers))  # type: ignore[arg-type]
        pool._busy.add(conn)
        return conn

    pool._acquire = acquire
    per_task = max(1, changes // CONCURRENCY)

    async def changer(task: int, count: int) -> None:
        for i in range(count):
            await _change(connector, system, task * count + i)

    try:
        await asyncio.gather(*(changer(n, 100) for n in range(CONCURRENCY)))  # warm-up
        figures = []
        for _ in range(rounds):
            started = time.process_time()
            await asyncio.gather(*(changer(n, per_task) for n in range(CONCURRENCY)))
            elapsed = time.process_time() - started
            figures.append(1e6 * elapsed / (per_task * CONCURRENCY))
        return figures
    finally:
        await connector.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=tuple(CUSTOMERS), default="keycom")
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, Emulators(Path(folder) / "emulators.log") as emu:
        answers: Any = uvloop.run(_catch(args.system, emu.urls[args.system]))
    figures = uvloop.run(_rounds(args.system, answers, args.changes, args.rounds))
    print(
        f"{args.system} change (fetch + apply), Python path, us CPU:",
        " ".join(f"{f:.1f}" for f in figures),
        f"(best {min(figures):.1f})",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
