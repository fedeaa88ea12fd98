"""What one API call costs the operator's own CPU: the engine's calls over urllib3 against its direct transport.

    python bench/transport.py --pods 400 --threads 1,32 --rounds 3 --json

Starts a private control plane without kwok (etcd, kube-apiserver), then creates and binds ``--pods`` pods as
Suanli renders them (an NVIDIA replica of bench/e2e.py's job) through `KubeApi`, once over
`transport.PoolTransport` (urllib3, as every call went before issue 12's seventh round and as calls still go
behind a proxy) and once over `transport.DirectTransport`, alternating within each round from ``--threads``
threads. Reports this process's CPU (user + system, all threads) per request and the wall time per request;
the API server's CPU is the same for both and is not counted.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import pod_shape  # noqa: E402
from e2e import NAMESPACE, ROOT, devcluster  # noqa: E402  (puts hack/ and operator/ on the path)
from suanli.controller.kubeapi import KubeApi  # noqa: E402
from suanli.controller.transport import DirectTransport, PoolTransport  # noqa: E402


def run(kube: KubeApi, template: dict[str, Any], pods: int, threads: int, tag: str) -> dict[str, float]:
    def work(first: int) -> None:
        for i in range(first, pods, threads):
            pod = copy.deepcopy(template)
            pod["metadata"]["name"] = f"{tag}-{i}"
            kube.create(NAMESPACE, "pods", pod)
            kube.bind(NAMESPACE, f"{tag}-{i}", "node-x")

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"client_cpu_us_per_request": round(1e6 * cpu / (2 * pods)),
            "wall_ms_per_request": round(1e3 * wall / (2 * pods), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=400)
    ap.add_argument("--threads", default="1,32", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cluster = devcluster.up(ROOT / ".cache" / "bench-transport", kwok=False, fresh=True)
    results: list[dict[str, Any]] = []
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = 64
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        template = pod_shape._gang_pods(1, 8, 1, "suanli", True)[1]  # an NVIDIA replica as rendered
        template["metadata"].pop("ownerReferences", None)  # no job: the garbage collector would take the pods
        kube = KubeApi(api, timeout=60)
        transports = {"urllib3": PoolTransport(api.configuration), "direct": DirectTransport(api.configuration)}
        for threads in (int(t) for t in args.threads.split(",")):
            for rnd in range(args.rounds):
                for name in (["urllib3", "direct"] if rnd % 2 == 0 else ["direct", "urllib3"]):
                    kube._transport = transports[name]
                    row = {"transport": name, "threads": threads, "round": rnd,
                           **run(kube, template, args.pods, threads, f"{name}-{threads}-{rnd}")}
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        devcluster.down(cluster.dir)
    if args.json:
        print(json.dumps({"pods": args.pods, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
