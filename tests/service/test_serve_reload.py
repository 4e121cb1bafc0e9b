"""Policies reload under a real ``gdpr-gateway serve``: a ConfigMap swap, and SIGHUP."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.cli import main as cli_main
from tests.service.configmap import catalog, note_read_only, write_configmap
from tests.service.processes import (
    emulator_process,
    events,
    http,
    metric,
    serve_config,
    start_serve,
    stop,
    wait_ready,
)
from tests.service.test_demo_command import free_block
from tests.service.test_serve_command import TOKEN

HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Purpose": "customer_service"}


@pytest.fixture
def urls() -> Iterator[dict[str, str]]:
    with emulator_process("--no-rate-limit") as found:
        yield found


def keycom_version(port: int) -> str:
    status, body, _ = http(port, "GET", "/v1/systems", headers=HEADERS)
    assert status == 200
    return str(next(s["policy_version"] for s in body["systems"] if s["system"] == "keycom"))


def eventually(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_serve_puts_a_swapped_configmap_in_force_and_refuses_a_bad_one(
    urls: dict[str, str], tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    write_configmap(policies, catalog())
    port = free_block()
    config = serve_config(
        tmp_path, urls, port,
        policies_dir=str(policies), policies_reload_seconds=0.2,
        shutdown={"drain_seconds": 0},
    )
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
    proc = start_serve(config)
    try:
        wait_ready(port, proc)
        first = keycom_version(port)
        note = "/v1/systems/keycom/customers/4001"
        assert http(port, "PATCH", note, {"note": "editable"}, HEADERS)[0] == 200

        write_configmap(policies, catalog(
            **{"keycom.yaml": note_read_only(catalog()["keycom.yaml"])}
        ))
        eventually(lambda: keycom_version(port) != first, "the swapped set is in force")
        second = keycom_version(port)
        status, body, _ = http(port, "PATCH", note, {"note": "now read-only"}, HEADERS)
        assert status == 422 and body["errors"][0]["code"] == "read_only"
        assert metric(port, "gdpr_gateway_policy_info", system="keycom", version=second) == 1

        broken = catalog()["keycom.yaml"].replace("type: string", "type: strin", 1)
        write_configmap(policies, catalog(**{"keycom.yaml": broken}))
        eventually(
            lambda: metric(port, "gdpr_gateway_policy_reload_total", result="failure") == 1,
            "the broken set is refused",
        )
        assert keycom_version(port) == second
        assert metric(port, "gdpr_gateway_policy_last_reload_successful") == 0
        assert http(port, "GET", "/readyz")[0] == 200  # a refused reload is not an outage
    finally:
        code, err = stop(proc)
    assert code == 0
    reloads = [e for e in events(err) if e["event"] == "policy_reload"]
    assert [e["result"] for e in reloads] == ["success", "failure"]
    assert reloads[1]["where"] and all(w.startswith("keycom.yaml:") for w in reloads[1]["where"])
    assert "strin" not in err  # positions only, never the text of the file


def test_sighup_reloads_when_watching_is_off(urls: dict[str, str], tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    write_configmap(policies, catalog())
    port = free_block()
    config = serve_config(
        tmp_path, urls, port,
        policies_dir=str(policies), policies_reload_seconds=0,
        shutdown={"drain_seconds": 0},
    )
    assert cli_main(["db", "upgrade", "--config", str(config)]) == 0
    proc = start_serve(config)
    try:
        wait_ready(port, proc)
        first = keycom_version(port)
        write_configmap(policies, catalog(
            **{"keycom.yaml": note_read_only(catalog()["keycom.yaml"])}
        ))
        time.sleep(0.5)
        assert keycom_version(port) == first  # nothing watches
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: keycom_version(port) != first, "SIGHUP put the new set in force")
        assert metric(port, "gdpr_gateway_policy_reload_total", result="success") == 1
    finally:
        code, err = stop(proc)
    assert code == 0
    assert [e.get("trigger") for e in events(err) if e["event"] == "policy_reload"] == ["signal"]
