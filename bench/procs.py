"""The processes of an end-to-end bench run: the emulators, the reference proxy and the
gateway (``gdpr-gateway serve --config``, as an operator runs it), each on loopback on a
free port, plus a fresh audit store (SQLite file or PostgreSQL database) per gateway run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from service.demo_settings import emulator_upstream
from service.registry import SYSTEMS

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
#: the bench's caller: an editor of every system (the demo's published token)
TOKEN = "demo-editor"
#: the emulators run with billbee's 2/s limit off; the connector always paces billbee
#: (docs/upstreams.md), so the bench raises its limit far above anything reached here
BILLBEE_BENCH_RATE = 1_000_000.0


class BenchError(RuntimeError):
    """A bench run that could not be carried out or whose answers were not the intended."""


def cli() -> str:
    """The ``gdpr-gateway`` console script of this interpreter's environment."""
    return str(Path(sys.executable).with_name("gdpr-gateway"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> int | None:
    """How many sockets listen on TCP ``port`` (``/proc/net/tcp*``: with ``SO_REUSEPORT``
    each process's socket is one); None where ``/proc`` does not say (not Linux)."""
    count, seen = 0, False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            lines = Path(table).read_text().splitlines()[1:]
            seen = True
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count if seen else None


def socket_owners(pids: set[int] | list[int]) -> dict[str, int]:
    """{socket inode: pid} of every socket the processes ``pids`` hold (``/proc/PID/fd``);
    the inode is column 10 of ``/proc/net/tcp*``. Processes gone meanwhile are skipped."""
    owners: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        owners[target[8:-1]] = pid
    return owners


def wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 60.0,
              listeners: int = 1) -> None:
    """Until ``proc`` accepts connections on ``port`` with ``listeners`` sockets (the
    processes of ``serve --workers N`` or ``bare_proxy --processes N``: each listens with
    its own; a load started before all listen would go to the first only)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            if (listening(port) or listeners) >= listeners:
                return
        if time.monotonic() > deadline:
            raise BenchError(
                f"{what} does not listen on port {port} with {listeners} socket(s) "
                f"after {timeout:.0f} s"
            )
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], what: str) -> None:
    """SIGTERM and wait: aiohttp finishes the requests in flight before it exits."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError(f"{what} did not stop within 60 s of SIGTERM") from None


@contextlib.contextmanager
def server(
    argv: list[str], port: int, what: str, log: Path, env: dict[str, str] | None = None,
    listeners: int = 1,
) -> Iterator[subprocess.Popen[Any]]:
    """A server process listening on ``port`` (with ``listeners`` processes, each its own
    socket); its stdout and stderr go to ``log``; ``env``: its environment (default: this
    process's)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603
        try:
            wait_port(port, proc, what, listeners=listeners)
            yield proc
        finally:
            stop(proc, what)


def cpu_by_process(pid: int) -> dict[int, float]:
    """User + system CPU seconds of process ``pid`` (all its threads) and of each of its
    living descendants, by pid, from ``/proc`` (empty where there is none: not Linux, or
    gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            found[current] = (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) and of its living
    child processes, from ``/proc`` (0.0 where there is none: not Linux, or gone)."""
    return sum(cpu_by_process(pid).values())


def http_json(method: str, url: str) -> Any:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


class Emulators:
    """``gdpr-gateway emulate --no-rate-limit`` in a process of its own, on free ports."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._out: IO[bytes] | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}

    def __enter__(self) -> Emulators:
        self._proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [cli(), "emulate", "--base-port", "0", "--no-rate-limit"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            words = line.split()
            if line.startswith("emulators ready"):
                break
            if len(words) >= 2 and words[1].startswith("http://"):
                self.urls[words[0]] = words[1]
        if self._proc.poll() is not None or not self.urls:
            raise BenchError("the emulators did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            try:
                stop(self._proc, "emulators")
            finally:
                if self._proc.stdout is not None:
                    self._proc.stdout.close()  # the pipe read until "ready" (was left open)

    def reset(self) -> None:
        for url in self.urls.values():
            http_json("POST", f"{url}/_emulator/reset")

    def requests(self, system: str) -> dict[str, int]:
        """Requests by method that reached ``system``'s API since the last reset."""
        counts = http_json("GET", f"{self.urls[system]}/_emulator/stats")["requests"]
        return {method: int(n) for method, n in counts.items()}

    def settled_requests(self, system: str) -> dict[str, int]:
        """The counts once they stop moving (requests in flight have landed)."""
        last = self.requests(system)
        while True:
            time.sleep(0.05)
            now = self.requests(system)
            if now == last:
                return now
            last = now


def _pg(sql: str, *, fetch: bool = False) -> Any:
    import asyncpg

    async def run() -> Any:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            return await (conn.fetchval(sql) if fetch else conn.execute(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def pg_backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds (user + system, ``/proc``) of each server backend connected to the
    database of the audit store ``url`` now: the server must run on this machine."""
    import asyncpg

    name = url.rsplit("/", 1)[1]

    async def run() -> list[int]:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
            return [int(r[0]) for r in rows]
        finally:
            await conn.close()

    return {pid: cpu_seconds(pid) for pid in asyncio.run(run())}


def postgres_version() -> str:
    return str(_pg("SHOW server_version", fetch=True))


@contextlib.contextmanager
def audit_store(store: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty audit store: a SQLite file in ``folder``, or a PostgreSQL
    database of its own on the shared server (created here, dropped afterwards)."""
    if store == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/audit-{uuid.uuid4().hex[:12]}.db"
        return
    name = f"bench_{uuid.uuid4().hex[:12]}"
    _pg(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def gateway_config(
    folder: Path, *, port: int, audit_url: str, urls: dict[str, str], conflict_check: bool
) -> Path:
    """A deployment's config file (docs/configuration.md) with fresh keys and the demo's
    upstream credentials; the bench caller holds ``TOKEN`` (editor of every system)."""
    run = uuid.uuid4().hex[:8]

    def key(name: str, size: int) -> str:
        """A new key in a file (as Kubernetes mounts secrets; the audit CLI reads files)."""
        path = folder / f"{run}-{name}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(size)).decode() + "\n")
        return str(path)

    config = {
        "host": "127.0.0.1",
        "port": port,
        "log_level": "INFO",
        "conflict_check": conflict_check,
        "audit": {
            "url": audit_url,
            "master_key_file": key("master", 32),
            "signing_key_file": key("signing", 32),
        },
        "masking": {
            "pseudonym_key_file": key("pseudonym", 32),
            "hash_salt_file": key("salt", 16),
        },
        "auth": {"tokens": [{
            "name": "bench", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
            "roles": ["editor"], "systems": ["*"],
        }]},
        "upstreams": {name: upstream(name, urls[name]) for name in SYSTEMS},
    }
    path = folder / f"{run}-gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def upstream(name: str, url: str) -> dict[str, Any]:
    """One system's section as the demo's; billbee's client pacing raised far above
    anything the bench reaches."""
    section = emulator_upstream(SYSTEMS, name, url)
    if name == "billbee":
        section.update(rate_limit_per_second=BILLBEE_BENCH_RATE, rate_limit_burst=1000)
    return section


def run_cli(*args: str) -> str:
    """``gdpr-gateway ARGS``; its stdout, or BenchError with its last lines."""
    done = subprocess.run(  # noqa: S603 - our own CLI
        [cli(), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise BenchError(f"gdpr-gateway {args[0]} {args[1]} exited {done.returncode}: {tail}")
    return done.stdout


def run_ab(
    a: Path,
    b: Path,
    rounds: int,
    run: Callable[[Path], dict[str, float]],
    describe: Callable[[dict[str, float]], str],
    fields: dict[str, str],
) -> None:
    """An interleaved A/B run: ``rounds`` times A then B (``run`` on each checkout), a
    line per run (``describe``), then one line per field of ``fields`` (key -> label):
    each side's median and the median (range) of the rounds' B/A ratios."""
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for round_ in range(1, rounds + 1):
        for side, checkout in (("A", a), ("B", b)):
            got = run(checkout.resolve())
            runs[side].append(got)
            print(f"round {round_} {side}: {describe(got)}", flush=True)
    for key, what in fields.items():
        before = [r[key] for r in runs["A"]]
        after = [r[key] for r in runs["B"]]
        ratios = [y / x for x, y in zip(before, after, strict=True)]
        print(f"{what}: A median {statistics.median(before):.1f} us, B median "
              f"{statistics.median(after):.1f} us, B/A median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip


def child_on(checkout: Path, script: str, *args: str) -> dict[str, float]:
    """Run ``script --child ARGS`` with this interpreter on ``checkout``'s code (an A/B
    side) and return the JSON object its last line of output holds."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = [sys.executable, str(Path(script).resolve()), "--child", *args]
    done = subprocess.run(  # noqa: S603 - this interpreter, a bench file
        command, env=env, cwd=checkout, check=True, capture_output=True, text=True, timeout=300
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
