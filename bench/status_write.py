"""What a job status write costs the API server: a merge patch against a PUT of the status subresource.

    python bench/status_write.py --jobs 300 --rounds 3

A control plane of its own (no kwok, no operator), the AITrainingJob CRD as shipped, ``--jobs`` jobs as
bench/e2e.py submits them. Each round times, by the API server's own CPU seconds (/proc), per request:
``create`` (the jobs), ``get`` (a read), and a status write of a Running gang of 8 made each way after a
read of the job, as the engine writes it over the version it decided from: ``merge+get`` (the merge patch
Suanli sent until 2026-11-30) and ``put+get`` (the PUT it sends now). Subtract ``get`` for the write alone.
Ways alternate within each round, so drift in the machine spreads over both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path[:0] = [str(Path(__file__).resolve().parent)]
import e2e  # noqa: E402  (puts hack/ and operator/ on the path)
from e2e import ROOT, cpu_seconds, devcluster  # noqa: E402
from suanli.controller.kubeapi import KubeApi  # noqa: E402

BASE = "/apis/suanli.io/v1alpha1/namespaces/bench/aitrainingjobs"


def running_status(ready: int) -> dict[str, Any]:
    """A status as the binder writes it for a gang of 8 on one rack."""
    when = "2026-11-30T20:00:00Z"
    return {
        "phase": "Running", "vendor": "nvidia", "model": "H100", "candidateIndex": 0,
        "conditions": [{"type": "Placed", "status": "True", "reason": "Placed", "lastTransitionTime": when,
                        "message": "placed 8 replicas on H100 (nvidia) across 1 rack(s)"}],
        "placement": [{"replica": r, "node": f"node-{r:04d}", "candidateIndex": 0, "linkDomain": "0",
                       "rack": "rack-1", "zone": "zone-a", "region": "r1"} for r in range(8)],
        "span": {"nodes": 8, "racks": 1, "zones": 1, "regions": 1}, "readyReplicas": ready,
        "observedGeneration": 1, "reason": "Bound", "message": "all 8 replicas bound",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = devcluster.up(ROOT / ".cache" / "status-write-cluster", kwok=False, fresh=True)
    results: dict[str, list[float]] = {}
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = 16
        kube = KubeApi(api, timeout=60)
        subprocess.run([str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "apply",
                        "--server-side", "-f", str(ROOT / "crds" / "suanli.io_aitrainingjobs.yaml")],
                       check=True, capture_output=True)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "bench"}})
        time.sleep(3)  # the CRD's endpoints come up
        pids = {"api": cluster.pids["kube-apiserver"]}
        pool = ThreadPoolExecutor(8)

        def timed(key: str, fn: Callable[[int], object]) -> None:
            before = cpu_seconds(pids)["api"]
            list(pool.map(fn, range(args.jobs)))
            spent = cpu_seconds(pids)["api"] - before
            results.setdefault(key, []).append(round(spent / args.jobs * 1000, 2))

        for rnd in range(args.rounds):
            def name(i: int, rnd: int = rnd) -> str:
                return f"j{rnd}-{i}"

            def create(i: int) -> None:
                body = e2e.job_body(i, 8, 1)
                body["metadata"]["name"] = name(i)
                kube.request("POST", BASE, body=body)

            def get(i: int) -> None:
                kube.request("GET", f"{BASE}/{name(i)}")

            def merge(i: int, rnd: int = rnd) -> None:
                rv = (kube.request("GET", f"{BASE}/{name(i)}") or {})["metadata"]["resourceVersion"]
                kube.request("PATCH", f"{BASE}/{name(i)}/status", content_type="application/merge-patch+json",
                             body={"metadata": {"resourceVersion": rv}, "status": running_status(rnd + i % 2)})

            def put(i: int, rnd: int = rnd) -> None:
                rv = (kube.request("GET", f"{BASE}/{name(i)}") or {})["metadata"]["resourceVersion"]
                kube.replace_job_status("bench", name(i), running_status(rnd + 2 + i % 2), resource_version=rv)

            timed("create", create)
            timed("get", get)
            for key, fn in (("merge+get", merge), ("put+get", put)) if rnd % 2 == 0 else \
                    (("put+get", put), ("merge+get", merge)):
                timed(key, fn)
            print(json.dumps({"round": rnd, "api_cpu_ms_per_request": results}), file=sys.stderr, flush=True)
    finally:
        devcluster.down(cluster.dir)
    print(json.dumps({"jobs": args.jobs, "rounds": args.rounds, "api_cpu_ms_per_request": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
