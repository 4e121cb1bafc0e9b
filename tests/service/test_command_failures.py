"""What an operator sees when a command cannot do its work: the line that names the fix,
exit status 2, no traceback - through the real console script, in a process of its own.

Each case checks the non-log lines of stderr exactly (``serve`` may have logged JSON
lines before it failed) and that no secret of the configuration is among them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import write_config

CONSOLE_SCRIPT = Path(sys.executable).parent / "gdpr-gateway"
CLOSED_PORT_URLS = {s: f"http://127.0.0.1:{i}" for i, s in enumerate(
    ("timelog", "billbee", "sedona", "keycom"), start=1)}  # fmt: skip
DB_PASSWORD = "db-password-XYZZY"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """Exit status, the lines of stderr that are not JSON log lines, all of stderr."""
    proc = subprocess.run(  # noqa: S603 - our own console script
        [str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )
    said = [line for line in proc.stderr.splitlines() if line.strip() and not _is_log(line)]
    return proc.returncode, said, proc.stderr


def _is_log(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def config(tmp_path: Path, **changes: object) -> Path:
    """A complete configuration (SQLite store in tmp_path), with top-level keys of
    ``audit`` or the file replaced."""
    path = write_config(tmp_path, CLOSED_PORT_URLS, 0)
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if key.startswith("audit_"):
            data["audit"][key.removeprefix("audit_")] = value
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def assert_clean(code: int, said: list[str], stderr: str, tmp_path: Path) -> None:
    assert code == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    secrets = [p.read_text().strip() for p in (tmp_path / "secrets").iterdir()]
    for value in [*secrets, DB_PASSWORD]:
        assert value not in stderr


def test_the_console_script_is_installed() -> None:
    assert CONSOLE_SCRIPT.is_file(), "run make install"


def test_a_bad_configuration_lists_each_problem(tmp_path: Path) -> None:
    path = config(tmp_path, port="eighty", audit_ulr="x")
    for command in ("serve", "db upgrade", "audit verify"):
        code, said, stderr = run(*command.split(), "--config", str(path))
        assert_clean(code, said, stderr, tmp_path)
        assert [re.sub(r":\d+:", ":N:", line) for line in said] == [
            f"config error: {path}:N: audit.ulr: unknown key",
            f"config error: {path}:N: port: must be an integer",
        ], (command, said)


def test_serve_on_a_store_never_upgraded_names_db_upgrade(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, said, stderr = run("serve", "--config", str(path))
    assert_clean(code, said, stderr, tmp_path)
    assert said == [
        "error: the audit store has no schema yet; create it first with "
        f"`gdpr-gateway db upgrade --config {path}`"
    ]
    code, said, stderr = run("audit", "verify", "--config", str(path))
    assert_clean(code, said, stderr, tmp_path)
    assert said[0].endswith(f"`gdpr-gateway db upgrade --config {path}`")


@pytest.mark.parametrize("command", ["serve", "db upgrade", "audit verify"])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+asyncpg://gateway:{DB_PASSWORD}@127.0.0.1:{port}/gateway"
    path = config(tmp_path, audit_url=url)
    code, said, stderr = run(*command.split(), "--config", str(path))
    assert_clean(code, said, stderr, tmp_path)
    assert said == [
        "error: cannot reach the audit store (ConnectionRefusedError); check audit.url and "
        "that the database is up and accepts this user"
    ]


def test_a_wrong_master_key_is_named(tmp_path: Path) -> None:
    path = config(tmp_path)
    assert run("db", "upgrade", "--config", str(path))[0] == 0
    # one entry, so the store holds a subject key wrapped by the master key; then another
    subprocess.run(  # noqa: S603 - one entry through the library, in a process of its own
        [sys.executable, "-c", _WRITE_ONE, str(path)], check=True, timeout=60,
    )
    (tmp_path / "secrets" / "master-key").write_text(base64.b64encode(os.urandom(32)).decode())
    for command in ("serve", "audit verify"):
        code, said, stderr = run(*command.split(), "--config", str(path))
        assert_clean(code, said, stderr, tmp_path)
        assert said == [
            "error: the master key does not open this audit store's subject keys; give the "
            "audit.master_key the store was written with"
        ], command


_WRITE_ONE = """
import asyncio, os, sys
from pathlib import Path
from audit import AuditLog, Outcome
from service.config import load_audit_access
from tests.audit.conftest import make_intent

async def main():
    access = load_audit_access(Path(sys.argv[1]), os.environ)
    log = await AuditLog.open(access.url, master_key=access.master_key,
                              signing_key=access.signing_key)
    try:
        await log.record(make_intent("1"), Outcome("applied"))
    finally:
        await log.close()

asyncio.run(main())
"""


def test_invalid_policies_are_listed_then_the_fix(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "billbee.yaml").write_text("system: billbee\nmode: put\n")
    path = config(tmp_path, policies_dir=str(policies))
    assert run("db", "upgrade", "--config", str(path))[0] == 0
    code, said, stderr = run("serve", "--config", str(path))
    assert_clean(code, said, stderr, tmp_path)
    assert said == [
        "policy error: billbee.yaml:1 id_field: required key is missing",
        "policy error: billbee.yaml:1 masking: required key is missing",
        "policy error: billbee.yaml:1 fields: required key is missing",
        "error: the policy files are invalid; fix the lines above "
        "(`gdpr-gateway policy check DIR` checks them without starting)",
    ]


def test_an_address_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = config(tmp_path, port=taken.getsockname()[1])
        assert run("db", "upgrade", "--config", str(path))[0] == 0
        code, said, stderr = run("serve", "--config", str(path))
    assert_clean(code, said, stderr, tmp_path)
    assert len(said) == 1 and said[0].startswith("error: cannot listen (")
    assert said[0].endswith("choose another --host/--port, or stop what holds the address")


def test_a_damaged_demo_key_file_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run("db", "upgrade", "--state-dir", str(state))[0] == 0
    (state / "signing.key").write_text("not base64 !")
    (tmp_path / "secrets").mkdir()
    code, said, stderr = run("audit", "public-key", "--state-dir", str(state))
    assert_clean(code, said, stderr, tmp_path)
    assert said == ["error: the signing key is not valid base64"]


def test_the_demo_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    port = free_block()
    (tmp_path / "secrets").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, said, stderr = run("demo", "--port", str(port), "--state-dir", str(tmp_path / "s"))
    assert_clean(code, said, stderr, tmp_path)
    assert len(said) == 1 and said[0].startswith("error: cannot listen (")


def test_an_unreadable_policy_file_is_named(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "keycom.yaml").write_bytes(b"system: keycom\n\xff\xfe\n")
    path = config(tmp_path, policies_dir=str(policies))
    assert run("db", "upgrade", "--config", str(path))[0] == 0
    code, said, stderr = run("serve", "--config", str(path))
    assert_clean(code, said, stderr, tmp_path)
    assert said[0] == "policy error: keycom.yaml:1: cannot read the file (UnicodeDecodeError)"
    assert said[-1].startswith("error: the policy files are invalid; fix the lines above")


def test_each_reported_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor and its workers share stderr: a line written in two parts (print's
    text, then its newline) let another process's JSON log line land in the middle, and
    the supervisor's 'giving up' event was lost in a worker's error line."""
    import argparse
    import sys

    from audit.errors import StoreNotInitialised
    from service.failures import reported

    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            return None

    monkeypatch.setattr(sys, "stderr", Recorder())
    assert reported(StoreNotInitialised("no schema"), argparse.Namespace(config=None))
    assert writes and all(w.endswith("\n") and w.count("\n") == 1 for w in writes), writes
