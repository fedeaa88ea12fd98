"""What a pod's shape costs the API server: bench/e2e.py's trivial binder on pods of several shapes, one cluster.

    python bench/pod_shape.py --nodes 1000 --rounds 2 --json

The trivial binder (no scoring, Suanli's client) binds groups of ``--replicas`` pods as fast as the API server
lets it, so what changes between shapes is what the API server, kwok, the controller manager and the creating
client spend on the pods themselves. Shapes, each group's pods built for the same vendors as e2e's jobs:

* ``plain``: e2e's plain pod (one container, requests only), as kube-scheduler's phase creates.
* ``suanli-env``: as render.gang.build_pod renders a replica (the launch variables all in ``env``, Suanli's
  pods before 2026-11-30's third round), with the scheduler name and a group label of the bench's.
* ``suanli``: as the engine renders a gang today (render_gang: shared variables through ``envFrom``).
* ``no-env``: ``suanli-env`` without any ``env``; ``no-init``: without the Ascend init container and its
  volumes.

Owner references are dropped (no job exists: the garbage collector would delete the pods), and the
``<job>-launch`` ConfigMaps are not created (kwok starts no containers). Shapes alternate within each round,
so drift in the machine spreads over all of them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path[:0] = [str(Path(__file__).resolve().parent)]
import e2e  # noqa: E402  (puts hack/, tests/integration and operator/ on the path)
from e2e import NAMESPACE, ROOT, devcluster  # noqa: E402
from fleet import _VENDORS  # noqa: E402
from suanli.api.aitrainingjob import parse_job  # noqa: E402
from suanli.controller.kubeapi import KubeApi  # noqa: E402
from suanli.controller.slots import render_gang  # noqa: E402
from suanli.render import GangSlot, build_pod  # noqa: E402
from suanli.settings import OperatorSettings  # noqa: E402

PodMaker = Callable[[int, int, int, str], dict[str, Any]]
SHAPES = ("plain", "suanli-env", "suanli", "no-env", "no-init")


def _gang_pods(i: int, replicas: int, per_replica: int, scheduler_name: str, shared: bool) -> list[dict[str, Any]]:
    body = e2e.job_body(i, replicas, per_replica)
    body["metadata"].update(namespace=NAMESPACE, uid=f"00000000-0000-0000-0000-{i:012d}")
    job = parse_job(body)
    vendor = ("huawei", "nvidia", "hygon")[i % 3]
    resource = _VENDORS[i % 3]["resource"]
    slots = [GangSlot(r, f"node-{r}", resource, vendor, f"bench/{vendor}:1", "0") for r in range(replicas)]
    settings = OperatorSettings(scheduler_name=scheduler_name)
    if shared:
        return render_gang(job, slots, settings).pods
    return [build_pod(job, s, world=replicas, generation=0, scheduler_name=scheduler_name,
                      tolerate=settings.inventory.tolerated_taints) for s in slots]


def maker(shape: str, replicas: int, groups: int, scheduler_name: str = "trivial") -> PodMaker:
    """make_pod for bench/e2e.py's run_phase: replica r of group i in `shape`. Every group's pods are built
    here, before the phase: rendering them in the creating client during the phase took CPU from the API
    server on this 2-CPU machine (the bench process used 3 s instead of 1 s)."""
    if shape == "plain":
        return e2e.plain_pod
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: choose from {', '.join(SHAPES)}")
    built = {(i, r): _shaped(pod, shape, i, r)
             for i in range(groups)
             for r, pod in enumerate(_gang_pods(i, replicas, 1, scheduler_name, shared=shape == "suanli"))}

    def make(i: int, r: int, per_replica: int, scheduler_name: str) -> dict[str, Any]:
        return built[(i, r)]

    return make


def _shaped(pod: dict[str, Any], shape: str, i: int, r: int) -> dict[str, Any]:
    meta, spec = pod["metadata"], pod["spec"]
    meta.pop("ownerReferences", None)
    meta["name"] = f"job-{i:04d}-{r}"
    meta["labels"]["group"] = f"job-{i:04d}"
    trainer = spec["containers"][0]
    if shape == "no-env":
        trainer["env"] = []
    if shape == "no-init":
        spec.pop("initContainers", None)
        spec["volumes"] = [v for v in spec.get("volumes") or [] if not v["name"].startswith("suanli-rank")]
        trainer["volumeMounts"] = [m for m in trainer.get("volumeMounts") or []
                                   if not m["name"].startswith("suanli-rank")]
    return pod


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=200, help="groups per phase")
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="each shape once per round, alternating")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--json", action="store_true", help="one JSON object at the end")
    cli = parser.parse_args()
    shapes = [s.strip() for s in cli.shapes.split(",") if s.strip()]
    for shape in shapes:
        if shape not in SHAPES:  # refused before minutes of set-up
            parser.error(f"--shapes: unknown shape {shape!r}: choose from {', '.join(SHAPES)}")
    if cli.nodes < 1 or cli.jobs < 1 or cli.replicas < 1 or cli.rounds < 1:
        parser.error("--nodes, --jobs, --replicas and --rounds must be above 0")
    args = argparse.Namespace(jobs=cli.jobs, replicas=cli.replicas, per_replica=1, creators=32, timeout=300,
                              backlog=False, pprof=0, duration=60, binder_workers=64)
    cluster = devcluster.up(ROOT / ".cache" / "bench-cluster", fresh=True)
    rows: list[dict[str, Any]] = []
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = args.creators + 8
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        kube = KubeApi(api, timeout=60)
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            subprocess.run([str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "apply",
                            "--server-side", "-f", str(crd)], check=True, capture_output=True)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        e2e.make_nodes(kube, cli.nodes, args.creators)
        e2e.wait_nodes_schedulable(core, cli.nodes, timeout=max(600.0, cli.nodes * 0.25))
        e2e.warm_up(kube, core, cli.nodes, min(2000, cli.jobs * cli.replicas), args.creators)
        for round_ in range(cli.rounds):
            for shape in shapes:
                r = e2e.run_phase("trivial", cluster, Path(), api, kube, args, None, None, f"{shape}-{round_}",
                                  make_pod=maker(shape, cli.replicas, cli.jobs))
                e2e.clean(core, custom)
                row = {"shape": shape, "round": round_, "pods_per_s": r["pods_per_s"],
                       "apiserver_cpu_ms_per_pod": r["apiserver_cpu_ms_per_pod"], "total_cpu_s": r["total_cpu_s"],
                       "cpu_s": r["cpu_s"], "pod_watch_kib_per_group": r["apiserver"]["watch_kib"].get("pods"),
                       "groups_whole": r["groups_whole"]}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        devcluster.down(cluster.dir)
    if cli.json:
        print(json.dumps({"nodes": cli.nodes, "jobs": cli.jobs, "replicas": cli.replicas, "phases": rows}))
    else:
        for row in rows:
            print(f"{row['shape']:>11} round {row['round']}: {row['pods_per_s']:7.1f} pods/s, API server "
                  f"{row['apiserver_cpu_ms_per_pod']:.2f} ms/pod, all CPU {row['total_cpu_s']:.1f} s")
    return 0 if all(r["groups_whole"] == cli.jobs for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
