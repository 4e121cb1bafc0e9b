"""``python -m bench``: run every ``bench/*_bench.py`` in turn, each as ``python -m bench.X``
with its own defaults (each module's ``__main__`` block calls its ``main()``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    worst = 0
    for path in sorted(Path(__file__).parent.glob("*_bench.py")):
        print(f"== bench.{path.stem}", flush=True)
        command = [sys.executable, "-m", f"bench.{path.stem}"]
        result = subprocess.run(command, check=False)  # noqa: S603 - our own modules
        worst = max(worst, result.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
