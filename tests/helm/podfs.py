"""Lay a rendered pod's volumes out under a temporary root, as the kubelet would.

ConfigMap and Secret volumes become files (honouring ``items``), emptyDir and claims
become folders; the container's environment and arguments get their mount paths moved
under the root. The gateway's own loaders then read what a pod would read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helm.conftest import Rendered, secret_data


@dataclass(frozen=True)
class PodFs:
    root: Path
    mounts: tuple[str, ...]  # mount paths, longest first

    def path(self, text: str) -> str:
        """``text`` with every mount path moved under the root (in one pass)."""
        if not self.mounts:
            return text
        pattern = "|".join(re.escape(m) for m in self.mounts)
        return re.sub(rf"(?<![\w.-])(?:{pattern})(?![\w.-])", lambda m: f"{self.root}{m[0]}", text)


def container(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no container {name}")


def lay_out(
    rendered: Rendered,
    spec: Mapping[str, Any],
    name: str,
    root: Path,
    external_secrets: Mapping[str, Mapping[str, str]] = {},
) -> tuple[PodFs, dict[str, str], list[str]]:
    """(filesystem, environment, arguments) of container ``name`` of ``spec``."""
    c = container(spec, name)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = sorted((m["mountPath"] for m in c.get("volumeMounts", [])), key=len, reverse=True)
    fs = PodFs(root, tuple(mounts))
    for mount in c.get("volumeMounts", []):
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        files: dict[str, str] = {}
        if "configMap" in volume:
            source = rendered.one("ConfigMap", volume["configMap"]["name"])
            files = dict(source["data"])
            items = volume["configMap"].get("items")
        elif "secret" in volume:
            secret_name = volume["secret"]["secretName"]
            made = [d for d in rendered.all("Secret") if d["metadata"]["name"] == secret_name]
            files = secret_data(made[0]) if made else dict(external_secrets[secret_name])
            items = volume["secret"].get("items")
        else:
            continue  # emptyDir, persistentVolumeClaim: an empty folder
        if items:
            files = {i["path"]: files[i["key"]] for i in items}  # a missing key fails the pod
        for file, text in files.items():
            (target / file).write_text(fs.path(text) if "configMap" in volume else text)
    env = {e["name"]: fs.path(e["value"]) for e in c.get("env", []) if "value" in e}
    args = [fs.path(a) for a in c.get("args", [])]
    return fs, env, args
