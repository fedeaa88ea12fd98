"""End-to-end scheduling benchmark: Suanli vs kube-scheduler on the same kwok fleet, in one run.

    python bench/e2e.py --nodes 1000 --jobs 200 --replicas 8 --json

1. A private control plane (hack/devcluster.py) with `--nodes` kwok nodes from bench/fleet.py
   (a third each Ascend 910B, H100, DCU; 16 nodes a rack), all idle.
2. Suanli: the operator runs as a process; `--jobs` AITrainingJobs of `--replicas` replicas x
   `--per-replica` cards are submitted as fast as the client can; a pod watch records when each pod
   is bound. Reported: pods bound per second (first submission → last bind), p50/p99 time from a job's
   creation to its last pod bound, gangs left partial, gangs placed in their narrowest domain.
3. kube-scheduler, built from the same k8s.io/kubernetes module, binds the same number of plain pods
   with the same requests on the same nodes (Suanli stopped and its pods gone first), submitted in the
   same groups; same measures.
Prints one JSON object with --json (keys include suanli_pods_per_s, kube_scheduler_pods_per_s,
p99_job_bound_s, partial_gangs). Each phase also reports the CPU seconds each process used (`cpu_s`: the
scheduler under test, kube-apiserver, etcd, kwok) and, for Suanli, its API requests per gang (from its
`suanli_api_requests_total` metric): on a small machine the two schedulers compete with the API server for
the same cores, so these say where the time went.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "bench"), str(ROOT / "tests" / "integration"), str(ROOT / "operator")]

import devcluster  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402

from fleet import _VENDORS, node_dict  # noqa: E402
from suanli.controller.informer import Informer  # noqa: E402

NAMESPACE = "bench"


def make_nodes(core: client.CoreV1Api, count: int) -> list[dict[str, Any]]:
    nodes = []
    for i in range(count):
        rack = i // 16
        node = node_dict(f"bn-{i:05d}", rack % 3, f"r{rack}", f"z{rack // 8}", f"region-{rack // 32 % 2}")
        node["metadata"]["annotations"] = {"kwok.x-k8s.io/node": "fake"}
        nodes.append(node)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(core.create_node, nodes))
    return nodes


class BindRecorder:
    """Records when each pod in the benchmark namespace is first seen bound.

    Uses the operator's own raw list+watch feed (no typed deserialisation, resumes from its resourceVersion),
    so the recorder does not lag behind the events it timestamps.
    """

    def __init__(self, api: client.ApiClient, group_label: str) -> None:
        self.group_label = group_label
        self.bound: dict[str, tuple[float, str, str]] = {}  # pod -> (time, group, node)
        core = client.CoreV1Api(api)
        self._feed = Informer("bench-pods", lambda **kw: core.list_namespaced_pod(NAMESPACE, **kw), self._seen)
        self._feed.start()
        self._feed.synced.wait(60)

    def _seen(self, kind: str | None, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        name = pod["metadata"]["name"]
        if node and name not in self.bound:
            group = (pod["metadata"].get("labels") or {}).get(self.group_label, "")
            self.bound[name] = (time.monotonic(), group, node)

    def wait(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.bound) >= count:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._feed.stop()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User+system CPU seconds so far of each named process (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            out[name] = 0.0
    return out


def cpu_used(before: dict[str, float], pids: dict[str, int]) -> dict[str, float]:
    after = cpu_seconds(pids)
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in pids}


def api_requests(metrics_port: int) -> dict[str, float]:
    """The operator's suanli_api_requests_total, summed by `verb resource`."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("suanli_api_requests_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            out[f"{labels['verb'].strip(chr(34))} {labels['resource'].strip(chr(34))}"] += float(line.split()[-1])
    return dict(out)


Submit = Callable[[int, dict[str, float]], None]


def measure(api: client.ApiClient, group_label: str, pids: dict[str, int], submit: Submit,
            args: argparse.Namespace) -> dict[str, Any]:
    """One phase: submit `args.jobs` groups from 8 threads (`submit(i, created)` records each creation time),
    wait for every pod bound, and summarise binds and the CPU each process in `pids` used meanwhile."""
    recorder = BindRecorder(api, group_label)
    created: dict[str, float] = {}
    cpu0 = cpu_seconds(pids)
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: submit(i, created), range(args.jobs)))
    done = recorder.wait(args.jobs * args.replicas, args.timeout)
    recorder.stop()
    result = summarize(created, recorder, args.replicas, t0)
    result["completed"] = done
    result["cpu_s"] = cpu_used(cpu0, pids)
    return result


def job_body(i: int, replicas: int, per_replica: int) -> dict[str, Any]:
    vendor = ("huawei", "nvidia", "hygon")[i % 3]
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": f"job-{i:04d}"},
        "spec": {
            "replicas": replicas,
            "acceleratorsPerReplica": per_replica,
            "candidates": [{"vendor": vendor, "image": f"bench/{vendor}:1"}],
            "template": {"resources": {"requests": {"cpu": "1", "memory": "4Gi"}}},
            "topology": {"required": "zone"},
        },
    }


def plain_pod(i: int, r: int, per_replica: int) -> dict[str, Any]:
    resource = _VENDORS[i % 3]["resource"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"job-{i:04d}-{r}", "labels": {"group": f"job-{i:04d}"}},
        "spec": {
            "containers": [{"name": "trainer", "image": "bench:1", "resources": {
                "requests": {"cpu": "1", "memory": "4Gi", resource: str(per_replica)},
                "limits": {resource: str(per_replica)}}}],
            "restartPolicy": "Never",
        },
    }


def summarize(created: dict[str, float], recorder: BindRecorder, replicas: int, t0: float) -> dict[str, Any]:
    by_group: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for t, group, node in recorder.bound.values():
        by_group[group].append((t, node))
    latencies = sorted(max(t for t, _ in pods) - created[g] for g, pods in by_group.items() if g in created
                       and len(pods) == replicas)
    last = max((t for t, _, _ in recorder.bound.values()), default=t0)
    bound = len(recorder.bound)
    return {
        "pods_bound": bound,
        "pods_per_s": round(bound / max(last - t0, 1e-9), 1),
        "p50_job_bound_s": round(statistics.median(latencies), 3) if latencies else None,
        "p99_job_bound_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3)
        if latencies else None,
        "partial_gangs": sum(1 for pods in by_group.values() if 0 < len(pods) < replicas),
        "gangs_on_one_node": sum(1 for pods in by_group.values() if len({n for _, n in pods}) == 1),
        "whole_gangs": sum(1 for pods in by_group.values() if len(pods) == replicas),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    bin_dir = devcluster.build_tools("kube-scheduler")
    cluster = devcluster.up(ROOT / ".cache" / "bench-cluster", fresh=True)
    operator = OperatorProcess(cluster.kubeconfig, cluster.dir / "operator.log")
    scheduler: subprocess.Popen[bytes] | None = None
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = 32
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            subprocess.run([str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "apply",
                            "--server-side", "-f", str(crd)], check=True, capture_output=True)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        t_nodes = time.monotonic()
        make_nodes(core, args.nodes)
        node_setup_s = time.monotonic() - t_nodes

        # --- Suanli ---
        operator.start()
        assert operator.proc is not None

        def submit_job(i: int, created: dict[str, float]) -> None:
            body = job_body(i, args.replicas, args.per_replica)
            created[body["metadata"]["name"]] = time.monotonic()
            custom.create_namespaced_custom_object("suanli.io", "v1alpha1", NAMESPACE, "aitrainingjobs", body)

        suanli = measure(api, "suanli.io/job", {**cluster.pids, "suanli": operator.proc.pid}, submit_job, args)
        requests = api_requests(operator.metrics_port)
        suanli["api_requests_per_gang"] = {k: round(v / args.jobs, 2) for k, v in sorted(requests.items())}
        operator.stop()
        custom.delete_collection_namespaced_custom_object("suanli.io", "v1alpha1", NAMESPACE, "aitrainingjobs")
        core.delete_collection_namespaced_pod(NAMESPACE, grace_period_seconds=0)
        deadline = time.monotonic() + 120
        while core.list_namespaced_pod(NAMESPACE, limit=1).items and time.monotonic() < deadline:
            time.sleep(0.5)

        # --- kube-scheduler, same fleet, same pods ---
        log = open(cluster.dir / "kube-scheduler.log", "ab")  # noqa: SIM115 - owned by the child
        scheduler = subprocess.Popen(
            [str(bin_dir / "kube-scheduler"), f"--kubeconfig={cluster.kubeconfig}", "--leader-elect=false",
             "--bind-address=127.0.0.1", f"--secure-port={devcluster._free_port()}"],
            stdout=log, stderr=subprocess.STDOUT, env=cluster.env(), start_new_session=True)
        time.sleep(3)  # informers sync; pods submitted before that would only wait longer

        def submit_group(i: int, created: dict[str, float]) -> None:
            created[f"job-{i:04d}"] = time.monotonic()
            for r in range(args.replicas):
                core.create_namespaced_pod(NAMESPACE, plain_pod(i, r, args.per_replica))

        kube = measure(api, "group", {**cluster.pids, "kube-scheduler": scheduler.pid}, submit_group, args)
    finally:
        operator.stop()
        if scheduler is not None:
            scheduler.terminate()
            scheduler.wait(10)
        devcluster.down(cluster.dir)
    return {
        "nodes": args.nodes, "jobs": args.jobs, "replicas": args.replicas, "per_replica": args.per_replica,
        "node_setup_s": round(node_setup_s, 1),
        "suanli_pods_per_s": suanli["pods_per_s"], "kube_scheduler_pods_per_s": kube["pods_per_s"],
        "ratio": round(suanli["pods_per_s"] / max(kube["pods_per_s"], 1e-9), 2),
        "p99_job_bound_s": suanli["p99_job_bound_s"], "p50_job_bound_s": suanli["p50_job_bound_s"],
        "kube_scheduler_p99_group_bound_s": kube["p99_job_bound_s"],
        "partial_gangs": suanli["partial_gangs"],
        "suanli": suanli, "kube_scheduler": kube,
        "cpu_count": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--per-replica", type=int, default=1, help="accelerators per replica (default 1)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for all pods bound")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:34} {value}")
    return 0 if result["partial_gangs"] == 0 and result["suanli"]["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
