"""schemathesis against the document the gateway serves, on the production path.

The four emulators (``gdpr-gateway emulate``), a PostgreSQL audit database of its own
(``gdpr-gateway db upgrade``) and ``gdpr-gateway serve`` with the demo tokens, each in a
process of its own on loopback; then ``st run`` on the gateway's own ``/openapi.yaml``
(service/openapi.yaml with each system's path and typed PATCH and record schemas,
generated from the policies) with every check schemathesis has (server errors, status
codes, content types, headers and bodies against the document, auth, negative data,
positive data accepted, ...) as tests/fuzz/schemathesis.toml adjusts them, and the hooks
of tests/fuzz/st_hooks.py (positive customer cases aimed at customers that exist). Its
JSON report is the result: every failure must be in ``KNOWN`` (a defect named with its
issue item, strict: once it is gone the entry must go too), and the run must have tried
enough cases.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.demo_settings import DEMO_TOKENS, emulator_upstream
from service.registry import SYSTEMS
from tests.fuzz.profiles import LONG, ST_EXAMPLES, ST_SEED
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import wait_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(1800 if LONG else 300)]

REPO = Path(__file__).resolve().parents[2]
HOOKS = "tests.fuzz.st_hooks"
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")
PG = "postgresql://postgres@127.0.0.1:5432"
MIN_CASES = 2000  # fewer means the run did not reach the operations: fail, not pass
# the served document: the hand-written operations, the customer template's two replaced
# by two per system (schemathesis counts `/ui` and `/ui/` as one path)
_PATHS = yaml.safe_load((REPO / "service" / "openapi.yaml").read_text())["paths"]
OPERATIONS = len({
    (method, path.rstrip("/")) for path, item in _PATHS.items()
    for method in ("get", "put", "post", "delete", "patch") if method in item
}) - 2 + 2 * len(SYSTEMS)


def _config_file(folder: Path) -> Path:
    """tests/fuzz/schemathesis.toml; in the long run with the customer PATCHes' coverage
    phase too (two minutes of boundary cases: too long for `make test`)."""
    if not LONG:
        return CONFIG
    text = "\n".join(line for line in CONFIG.read_text().splitlines()
                     if "coverage-in-long-run-only" not in line)
    path = folder / "schemathesis.toml"
    path.write_text(text + "\n")
    for name in ("poison.txt", "header-poison.txt"):  # the dictionaries, found beside it
        (folder / name).write_bytes(CONFIG.with_name(name).read_bytes())
    return path

# (schemathesis failure code, operation) -> the open defect it shows. Empty: every finding
# of the first runs (issue 8 items 1, 9, 10) is fixed; a new finding fails the run unless
# it is entered here with the defect it shows (and then fixed).
KNOWN: dict[tuple[str, str], str] = {}


def _run(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service.cli", *args], text=True, **kwargs
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def _database(name: str, *, drop: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG}/test")
    try:
        if drop:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _config(folder: Path, upstream_base: int, port: int, database: str) -> Path:
    """A serve configuration: the demo's tokens (every system), fresh keys, PostgreSQL."""
    def key(name: str, size: int) -> str:
        # as files: `db upgrade` reads only the *_file form of the audit keys
        path = folder / name
        path.write_text(base64.b64encode(os.urandom(size)).decode())
        path.chmod(0o600)
        return name

    urls = {s: f"http://127.0.0.1:{upstream_base + i}" for i, s in enumerate(SYSTEMS, 1)}
    config = {
        "host": "127.0.0.1",
        "port": port,
        "log_level": "WARNING",
        "audit": {"url": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
                  "master_key_file": key("master-key", 32),
                  "signing_key_file": key("signing-key", 32)},
        "masking": {"pseudonym_key_file": key("pseudonym-key", 32),
                    "hash_salt_file": key("hash-salt", 16)},
        "auth": {"tokens": [
            {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(),
             "roles": sorted(map(str, roles)), "systems": ["*"]}
            for token, (name, roles) in DEMO_TOKENS.items()
        ]},
        # the emulators run unlimited here: Billbee's 2/s pacing would only slow the run
        "upstreams": {name: {**emulator_upstream(SYSTEMS, name, url), "rate_limit_per_second": 1000}
                      for name, url in urls.items()},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "serve exited early"
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "serve did not become ready"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway's base URL: serve + emulate + a fresh PostgreSQL database."""
    folder = tmp_path_factory.mktemp("schemathesis")
    database = f"st_{uuid.uuid4().hex[:12]}"
    asyncio.run(_database(database, drop=False))
    base = free_block()
    upstreams = _run("emulate", "--base-port", str(base), "--no-rate-limit",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve: subprocess.Popen[str] | None = None
    try:
        for i in range(1, 5):
            wait_port(base + i, upstreams, "emulate")
        port = free_block()
        config = _config(folder, base, port, database)
        upgrade = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "service.cli", "db", "upgrade", "--config", str(config)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert upgrade.returncode == 0, f"db upgrade failed: {upgrade.stderr[-500:]}"
        with (folder / "serve.log").open("w") as log:
            serve = _run("serve", "--config", str(config), stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, serve)
        yield url
    finally:
        if serve is not None:
            _stop(serve)
        _stop(upstreams)
        asyncio.run(_database(database, drop=True))


@pytest.fixture(scope="module")
def report(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One schemathesis run; its JSON report."""
    folder = tmp_path_factory.mktemp("schemathesis-report")
    path = folder / "report.json"
    command = [
        str(ST), "--config-file", str(_config_file(folder)), "--no-color",
        "run", f"{gateway}/openapi.yaml", "--url", gateway,
        "--checks", "all", "--max-examples", str(ST_EXAMPLES), "--workers", "1",
        "--continue-on-failure",  # a known failure must not end an operation's run early
        "--report", "json", "--report-json-path", str(path),
    ]
    if not LONG:
        command += ["--seed", str(ST_SEED)]
    with (folder / "st.log").open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                              timeout=1700 if LONG else 280, check=False, cwd=REPO,
                              env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS,
                                   "PYTHONPATH": str(REPO)})
    assert path.exists(), f"schemathesis wrote no report (exit {done.returncode}): {out.name}"
    body: dict[str, Any] = json.loads(path.read_text())
    body["log"] = out.name
    return body


def findings(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(f["code"], op): f["title"] for f in report["failures"] for op in f["operations"]}


def test_schemathesis_ran_every_operation_to_completion(report: dict[str, Any]) -> None:
    assert report["complete"] is True and report["stop_reason"] == "completed"
    ops = report["operations"]
    assert ops["tested"] == ops["selected"] == ops["total"] == OPERATIONS
    assert ops["errored"] == 0 and not report["errors"], report["log"]
    assert report["test_cases"]["generated"] >= MIN_CASES
    print(f"schemathesis: {report['test_cases']['generated']} cases, seed {report['seed']}")


def test_schemathesis_finds_no_failure_but_the_known(report: dict[str, Any]) -> None:
    new = {key: title for key, title in findings(report).items() if key not in KNOWN}
    assert not new, f"schemathesis failures (details in {report['log']}): {new}"


# -- what the schemathesis findings came down to, one request each: regression tests ----

ITEM1 = "issue 8 item 1: an unchecked id or text reaches PostgreSQL"
PROBES = [
    ("GET", "/v1/audit?customer_id=%00", None, {}, ITEM1 + " (500)"),
    ("GET", "/v1/audit?system=%00", None, {}, ITEM1 + " (500)"),
    ("GET", "/v1/audit?actor=a%00b", None, {}, ITEM1 + " (500)"),
    ("GET", "/v1/audit/%00", None, {}, ITEM1 + " (500)"),
    ("POST", "/v1/audit/%00/reveal", {"reason": "x"}, {}, ITEM1 + " (500)"),
    ("GET", "/v1/subjects/keycom/%00/export", None, {}, ITEM1 + " (500)"),
    ("POST", "/v1/subjects/keycom/x%00/erase", {"reason": "x"}, {}, ITEM1 + " (503)"),
    ("POST", "/v1/subjects/keycom/4001/erase", {"reason": "a\u0000b"}, {},
     "issue 8 items 1, 9: a NUL in a reason (503)"),
    ("GET", "/v1/audit?cursor=9223372036854775808", None, {},
     "F4 (not in issue 8): a cursor past 64 bits -> 500 instead of 422"),
    ("GET", "/v1/systems/keycom/policy", None, {"X-Request-Id": "\x00"},
     "issue 8 item 10: aiohttp's own 400 is text/plain and echoes the header"),
]


def _call(url: str, method: str, path: str, body: Any, headers: dict[str, str]
          ) -> tuple[int, str, bytes]:
    data = None if body is None else json.dumps(body).encode()
    sent = {"Authorization": "Bearer demo-privacy", "Content-Type": "application/json",
            **headers}
    req = urllib.request.Request(url + path, method=method, data=data, headers=sent)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), err.read()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [pytest.param(m, p, b, h, id=f"{m} {p}"[:60]) for m, p, b, h, _found in PROBES],
)
def test_poison_input_gets_a_problem_not_a_server_error(
    gateway: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    status, content_type, raw = _call(gateway, method, path, body, headers)
    assert status < 500, status
    assert content_type == "application/problem+json" or (status == 400 and not raw)
    assert b"\\x00" not in raw and b"\x00" not in raw  # nothing of the request echoed
