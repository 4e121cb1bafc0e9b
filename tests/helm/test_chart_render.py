"""What the Kubernetes schemas cannot see in the rendered chart: hardening, checksums that
follow the config, the migration hook's order, existingSecret wiring, refused values."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import (
    FULLNAME,
    SCENARIOS,
    Helm,
    HelmError,
    Rendered,
    pod_specs,
)

UID = 10001
HOOK = "helm.sh/hook"
WEIGHT = "helm.sh/hook-weight"
SECRET_KEYS = {
    "audit-master-key", "audit-signing-key", "masking-pseudonym-key", "masking-hash-salt",
    "auth-tokens", "timelog-token", "billbee-api-key", "billbee-username", "billbee-password",
    "sedona-username", "sedona-password", "keycom-token",
}  # fmt: skip


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_is_hardened(scenarios: dict[str, Rendered], scenario: str) -> None:
    specs = list(pod_specs(scenarios[scenario]))
    assert specs
    for where, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == UID, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (where, c["name"])
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == UID, (where, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, (where, c["name"])
            # with a read-only root, /tmp must be a volume
            mounted = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounted, c["name"]  # noqa: S108 - the pod's path, not ours
            assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
    for account in scenarios[scenario].all("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_deployment_defaults(scenarios: dict[str, Rendered]) -> None:
    deployment = scenarios["default"].deployment
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    gateway = pod["containers"][0]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    # drain 5 + grace 20 + margin 5 (the gateway's shutdown defaults)
    assert pod["terminationGracePeriodSeconds"] == 30
    assert "shutdown" not in scenarios["default"].config()
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_changed_shutdown_timing_reaches_the_gateway_and_the_grace_period(helm: Helm) -> None:
    # The gateway reads shutdown.drain_seconds/grace_seconds (defaults 5 and 20; issue 9,
    # graceful shutdown): the chart writes them only when they differ from those defaults.
    rendered = helm.template(
        ["default"], {"shutdown.drainSeconds": "10", "shutdown.graceSeconds": "30"}
    )
    assert rendered.config()["shutdown"] == {"drain_seconds": 10, "grace_seconds": 30}
    pod = rendered.deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 10 + 30 + 5
    fixed = helm.template(["default"], {"terminationGracePeriodSeconds": "90"})
    assert fixed.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90


def test_workers_reach_the_gateway_and_the_schema_bounds_them(helm: Helm) -> None:
    def workers(rendered: Rendered) -> str:
        gateway = rendered.deployment["spec"]["template"]["spec"]["containers"][0]
        (value,) = [e["value"] for e in gateway["env"] if e["name"] == "GDPR_GATEWAY_WORKERS"]
        return str(value)

    assert workers(helm.scenario("default")) == "0"  # the CPU limit decides (0 = auto)
    assert workers(helm.template(["default"], {"workers": "3"})) == "3"
    with pytest.raises(HelmError):
        helm.template(["default"], {"workers": "-1"})


def checksums(rendered: Rendered) -> dict[str, str]:
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_checksums_change_with_what_they_cover(helm: Helm) -> None:
    base = checksums(helm.scenario("default"))
    assert set(base) == {"checksum/config", "checksum/policies", "checksum/secret"}
    config = checksums(helm.template(["default"], {"config.log_level": "DEBUG"}))
    policy = "system: billbee\n# a changed policy\n"
    policies = checksums(
        helm.template(["default"], {"string:policies.files.billbee\\.yaml": policy})
    )
    secret = checksums(helm.template(["default"], {"secrets.upstreams.timelog.token": "rotated"}))
    assert config["checksum/config"] != base["checksum/config"]
    assert config["checksum/policies"] == base["checksum/policies"]
    assert policies["checksum/policies"] != base["checksum/policies"]
    assert policies["checksum/config"] == base["checksum/config"]
    assert secret["checksum/secret"] != base["checksum/secret"]
    assert secret["checksum/config"] == base["checksum/config"]
    again = checksums(
        helm.template(["default"], {"config.log_level": "DEBUG"}, monitoring_api=False)
    )
    assert again == config  # stable: same values, same checksums


def test_hot_reload_instead_of_rolling_drops_the_policies_checksum(helm: Helm) -> None:
    rendered = helm.template(["default"], {"policies.rollOnChange": "false"})
    assert "checksum/policies" not in checksums(rendered)
    mounts = rendered.deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    (policies,) = [m for m in mounts if m["name"] == "policies"]
    assert "subPath" not in policies  # a subPath mount never sees the kubelet's update


def test_migration_hook_runs_before_everything_with_its_own_objects(
    scenarios: dict[str, Rendered],
) -> None:
    rendered = scenarios["default"]
    hooks = [d for d in rendered.docs if HOOK in d["metadata"].get("annotations", {})]
    by_kind = {d["kind"]: d for d in hooks if d["kind"] != "Pod"}
    assert set(by_kind) == {"ServiceAccount", "ConfigMap", "Secret", "Job"}
    job = by_kind["Job"]
    for doc in by_kind.values():
        annotations = doc["metadata"]["annotations"]
        assert annotations[HOOK] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        if doc is not job:  # created first: a lower weight than the Job's
            assert int(annotations[WEIGHT]) < int(job["metadata"]["annotations"][WEIGHT])
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"][:2] == ["db", "upgrade"]
    assert spec["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"]
    hook_names = {d["metadata"]["name"] for d in by_kind.values()}
    for volume in spec["volumes"]:
        source = volume.get("configMap", {}).get("name") or volume.get("secret", {}).get(
            "secretName"
        )
        assert source is None or source in hook_names, volume  # never a release object
    # the job gets the store URL and no key
    (secret_volume,) = [v for v in spec["volumes"] if "secret" in v]
    assert [i["key"] for i in secret_volume["secret"]["items"]] == ["audit-url"]
    assert set(by_kind["Secret"]["data"]) == {"audit-url"}


def test_migration_with_an_existing_secret_and_a_url_in_values(
    scenarios: dict[str, Rendered],
) -> None:
    rendered = scenarios["networkpolicy"]  # existingSecret, URL in values, password Secret
    job = rendered.one("Job")
    assert not [d for d in rendered.all("Secret")]
    spec = job["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "gateway-db",
        "key": "password",
    }
    assert not [v for v in spec["volumes"] if "secret" in v]
    migrate_config = rendered.one("ConfigMap", f"{FULLNAME}-migrate")["data"]["config.yaml"]
    assert "postgresql+asyncpg://gateway@10.20.0.15:5432/gateway" in migrate_config


def test_sqlite_migrates_in_an_init_container_on_the_volume(
    scenarios: dict[str, Rendered],
) -> None:
    rendered = scenarios["sqlite"]
    assert not rendered.all("Job")  # a pre-install hook would run before the volume exists
    spec = rendered.deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["args"][:2] == ["db", "upgrade"]
    claim = rendered.one("PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert rendered.config()["audit"]["url"] == "sqlite+aiosqlite:////var/lib/gdpr-gateway/audit.db"


@pytest.mark.parametrize("scenario", ["postgresql-existingsecret", "monitoring", "networkpolicy"])
def test_existing_secret_is_mounted_and_no_secret_is_made(
    scenarios: dict[str, Rendered], scenario: str
) -> None:
    rendered = scenarios[scenario]
    assert not rendered.all("Secret")
    pod = rendered.deployment["spec"]["template"]
    assert "checksum/secret" not in pod["metadata"]["annotations"]
    (volume,) = [v for v in pod["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "gdpr-gateway-secrets"
    keys = {i["key"] for i in volume["secret"]["items"]}
    url_in_values = bool(rendered.config()["audit"].get("url"))
    assert keys == SECRET_KEYS | (set() if url_in_values else {"audit-url"})
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    file_vars = {k: v for k, v in env.items() if k.endswith("_FILE")}
    assert {v.rsplit("/", 1)[1] for v in file_vars.values()} == keys  # one variable per file


def test_selectors_keep_the_hook_and_test_pods_out(scenarios: dict[str, Rendered]) -> None:
    rendered = scenarios["networkpolicy"]
    selector = rendered.one("Service")["spec"]["selector"]
    for where, _ in pod_specs(rendered):
        kind, name = where.split("/")
        doc = rendered.one(kind, name)
        labels = (doc["spec"]["template"] if kind != "Pod" else doc)["metadata"]["labels"]
        matches = all(labels.get(k) == v for k, v in selector.items())
        assert matches == (kind == "Deployment"), where
    assert rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector


@pytest.mark.parametrize(
    ("scenario", "sets", "message"),
    [
        ("sqlite", {"replicaCount": "2"}, "replicaCount: Must be less than or equal to 1"),
        ("sqlite", {"audit.sqlite.persistence.enabled": "false"}, "persistence.enabled"),
        ("sqlite", {"autoscaling.enabled": "true"}, "autoscaling.enabled"),
        ("sqlite", {"tests.verifyChain.method": "cli"}, "tests"),
        ("default", {"replicaCount": "two"}, "replicaCount: Invalid type"),
        ("default", {"config.port": "9090"}, "Additional property port is not allowed"),
        ("default", {"config.logLevel": "INFO"}, "Additional property logLevel"),
        ("default", {"audit.store": "mysql"}, "audit.store"),
        ("default", {"string:secrets.auditMasterKey": "c2hvcnQ="}, "auditMasterKey"),
        ("default", {"secrets.authTokens[0].roles[0]": "root"}, "roles"),
        ("default", {"config.upstreams.billbee.max_retries": "-1"}, "max_retries"),
        ("default", {"config.upstreams.billbee.base_url": "ftp://x"}, "base_url"),
        ("default", {"string:audit.postgresql.url": "postgresql+asyncpg://u:pw@db/x"}, "url"),
        ("default", {"string:secrets.auditUrl": "postgresql://u:pw@db/x"}, "auditUrl"),
        ("monitoring", {"metrics.podMonitor.enabled": "true"}, "(not)"),
        ("default", {"networkPolicy.enabled": "true"}, "cidrs"),
        ("default", {"tests.verifyChain.method": "http"}, "tokenSecret.name"),
        ("default", {"image.digest": "latest"}, "image.digest"),
    ],
)
def test_the_schema_refuses_wrong_types_and_impossible_combinations(
    helm: Helm, scenario: str, sets: dict[str, str], message: str
) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template([scenario], sets)
    assert "values don't meet the specifications of the schema" in refused.value.stderr
    assert message in refused.value.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"secrets.auditMasterKey": "null"}, "secrets.auditMasterKey is required"),
        ({"config.upstreams.sedona.base_url": ""}, "config.upstreams.sedona.base_url is required"),
        (
            {"autoscaling.enabled": "true", "autoscaling.minReplicas": "5",
             "autoscaling.maxReplicas": "3"},
            "minReplicas must not exceed",
        ),
    ],
)  # fmt: skip
def test_missing_secrets_and_urls_are_named(helm: Helm, sets: dict[str, str], message: str) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template(["default"], sets)
    assert message in refused.value.stderr
