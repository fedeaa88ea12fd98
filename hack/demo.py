"""`make demo`: a local control plane with Suanli's CRDs installed, shown to the user, then shut down."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))

import devcluster  # noqa: E402


def main() -> int:
    directory = ROOT / ".cache" / "demo-cluster"
    t0 = time.monotonic()
    cluster = devcluster.up(directory, fresh=True)
    print(f"control plane up in {time.monotonic() - t0:.1f}s ({cluster.server})")
    kubectl = [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    try:
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            subprocess.run([*kubectl, "apply", "--server-side", "-f", str(crd)], check=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                        "crd/aitrainingjobs.suanli.io"], check=True)
        subprocess.run([*kubectl, "explain", "aitrainingjobs.spec"], check=True)
        subprocess.run([*kubectl, "get", "aitj", "-A"], check=True)
    finally:
        devcluster.down(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
