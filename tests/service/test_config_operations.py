"""The settings of reload, shutdown, reconciliation and idempotency keys: file, environment,
checks, docs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from service.app import forward_bound, reconcile_min_age
from service.config import ConfigError, env_name, load_settings
from tests.service.test_config import FULL, write

OPERATIONS = {
    ("policies_reload_seconds",): 5.0,
    ("shutdown", "drain_seconds"): 5.0,
    ("shutdown", "grace_seconds"): 20.0,
    ("audit", "reconcile_seconds"): 60.0,
    ("audit", "reconcile_min_age_seconds"): None,
    ("idempotency", "retention_seconds"): 86400.0,
    ("idempotency", "wait_seconds"): 5.0,
    ("idempotency", "expire_seconds"): 300.0,
}


def field(path: tuple[str, ...]) -> str:
    return "_".join(path)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL), {})
    for path, default in OPERATIONS.items():
        assert getattr(settings, field(path)) == default, path


def test_from_the_file_and_from_the_environment(tmp_path: Path) -> None:
    text = FULL.replace("  checkpoint_every: 50\n", (
        "  checkpoint_every: 50\n  reconcile_seconds: 0.5\n  reconcile_min_age_seconds: 2\n"
    )) + "policies_reload_seconds: 0\nshutdown:\n  drain_seconds: 1.5\n  grace_seconds: 3\n"
    settings = load_settings(write(tmp_path, text), {"GDPR_GATEWAY_SHUTDOWN_GRACE_SECONDS": "7"})
    assert settings.policies_reload_seconds == 0
    assert settings.shutdown_drain_seconds == 1.5
    assert settings.shutdown_grace_seconds == 7  # the environment wins
    assert settings.audit_reconcile_seconds == 0.5
    assert reconcile_min_age(settings) == 2
    unset = dataclasses.replace(settings, audit_reconcile_min_age_seconds=None)
    assert reconcile_min_age(unset) == forward_bound(unset)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GDPR_GATEWAY_SHUTDOWN_DRAIN_SECONDS", "-1"),
        ("GDPR_GATEWAY_SHUTDOWN_GRACE_SECONDS", "0"),
        ("GDPR_GATEWAY_POLICIES_RELOAD_SECONDS", "-0.5"),
        ("GDPR_GATEWAY_AUDIT_RECONCILE_SECONDS", "0"),
        ("GDPR_GATEWAY_AUDIT_RECONCILE_MIN_AGE_SECONDS", "-3"),
        ("GDPR_GATEWAY_SHUTDOWN_DRAIN_SECONDS", "soon"),
        ("GDPR_GATEWAY_IDEMPOTENCY_RETENTION_SECONDS", "0"),
        ("GDPR_GATEWAY_IDEMPOTENCY_WAIT_SECONDS", "-1"),
        ("GDPR_GATEWAY_IDEMPOTENCY_EXPIRE_SECONDS", "often"),
    ],
)
def test_impossible_values_are_refused(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, FULL), {variable: value})
    assert [e for e in caught.value.errors if e.startswith(variable)]


def test_idempotency_from_the_file_and_from_the_environment(tmp_path: Path) -> None:
    text = FULL + "idempotency:\n  retention_seconds: 3600\n  wait_seconds: 2\n"
    settings = load_settings(
        write(tmp_path, text), {"GDPR_GATEWAY_IDEMPOTENCY_EXPIRE_SECONDS": "0"}
    )
    assert settings.idempotency_retention_seconds == 3600
    assert settings.idempotency_wait_seconds == 2
    assert settings.idempotency_expire_seconds == 0  # from the environment


def test_every_one_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    for path in OPERATIONS:
        assert f"`{'.'.join(path)}`" in doc and env_name(path) in doc, path
