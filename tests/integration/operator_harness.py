"""Helpers for end-to-end tests: run the operator as a real process, make kwok fleets, write jobs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "hack")]

from operator_process import OperatorProcess  # noqa: E402

from fleet import node_dict  # noqa: E402

__all__ = ["OperatorProcess", "create_job", "delete_nodes", "get_job", "job_manifest", "job_pods", "lease_holder",
           "lease_name", "make_fleet", "phase", "replica", "wait_schedulable"]

VENDOR_INDEX = {"huawei": 0, "nvidia": 1, "hygon": 2}
IMAGES = {
    "huawei": "registry.example.com/train/demo:ascend",
    "nvidia": "registry.example.com/train/demo:cuda",
    "hygon": "registry.example.com/train/demo:dtk",
}
MODELS = {"huawei": "Ascend910B", "nvidia": "H100", "hygon": "DCU-K100-AI"}


def make_fleet(
    core: client.CoreV1Api,
    prefix: str,
    vendors: Iterable[str],
    racks: int = 2,
    nodes_per_rack: int = 4,
    zone: str = "z0",
    region: str = "region-a",
) -> list[str]:
    """kwok nodes labelled like real ones of each vendor, `racks` racks of `nodes_per_rack` per vendor."""
    names = []
    for vendor in vendors:
        for r in range(racks):
            for n in range(nodes_per_rack):
                name = f"{prefix}-{vendor}-r{r}-n{n}"
                node = node_dict(name, VENDOR_INDEX[vendor], f"{prefix}-{vendor}-r{r}", zone, region)
                node["metadata"]["annotations"] = {"kwok.x-k8s.io/node": "fake"}
                core.create_node(node)
                names.append(name)
    return names


def wait_schedulable(core: client.CoreV1Api, names: Iterable[str], timeout: float = 60) -> None:
    """Until kwok has made the nodes Ready and the node-lifecycle controller has lifted their not-ready taints:
    for tests in which any pending reason would be a failure, not start-up."""
    wanted = set(names)
    deadline = time.monotonic() + timeout
    while True:
        ready = {
            n.metadata.name for n in core.list_node().items
            if n.metadata.name in wanted
            and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            and not any(t.key.startswith("node.kubernetes.io/") for t in n.spec.taints or [])
        }
        if ready == wanted:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not schedulable after {timeout:.0f} s: {sorted(wanted - ready)[:5]}")
        time.sleep(0.5)


def delete_nodes(core: client.CoreV1Api, names: Iterable[str]) -> None:
    for name in names:
        try:
            core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def job_manifest(
    name: str,
    vendors: Iterable[str],
    *,
    replicas: int = 2,
    per_replica: int = 8,
    simulate: str | None = "succeed",
    after: str = "2s",
    **spec: Any,
) -> dict[str, Any]:
    annotations = {"suanli.io/simulate": simulate, "suanli.io/simulate-after": after} if simulate else {}
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "acceleratorsPerReplica": per_replica,
            "candidates": [{"vendor": v, "model": MODELS[v], "image": IMAGES[v]} for v in vendors],
            "template": {
                "command": ["torchrun", "train.py"],
                "annotations": annotations,
                "resources": {"requests": {"cpu": "4", "memory": "16Gi"}},
            },
            **spec,
        },
    }


def create_job(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "suanli.io", "v1alpha1", namespace, "aitrainingjobs", manifest
        )
    )


def get_job(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "suanli.io", "v1alpha1", namespace, "aitrainingjobs", name
        )
    )


def phase(api: client.ApiClient, namespace: str, name: str) -> str | None:
    return (get_job(api, namespace, name).get("status") or {}).get("phase")


def restarted_away(api: client.ApiClient, namespace: str, name: str, node: str) -> bool:
    """The job runs again after exactly one gang restart, on nodes that exclude `node`."""
    status = get_job(api, namespace, name).get("status") or {}
    nodes = {p["node"] for p in status.get("placement", [])}
    return status.get("phase") == "Running" and status.get("restarts") == 1 and node not in nodes


def job_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"suanli.io/job={name}").items)


LEASE_NAMESPACE = "default"
"""Where replicas started by `replica` keep the engine's Lease (their POD_NAMESPACE)."""


def replica(kubeconfig: Path, log: Path, identity: str, election: str, env: dict[str, str] | None = None
            ) -> OperatorProcess:
    """One operator replica that runs for leadership, as each pod of the chart's Deployment does: `identity`
    is its POD_NAME (its Lease holder identity and its User-Agent `suanli/<identity>`). The one place that
    knows how leader election is switched on, so the fault tests follow the engine when that changes."""
    return OperatorProcess(
        kubeconfig,
        log,
        extra_args=("--leader-election", election),
        env={"POD_NAME": identity, "POD_NAMESPACE": LEASE_NAMESPACE, **(env or {})},
    )


def lease_name(election: str) -> str:
    """The engine's Lease for replicas started with `replica(..., election)`."""
    return f"{election}-engine"


def lease_holder(api: client.ApiClient, election: str) -> str | None:
    """Who holds the engine's Lease now (None before anyone took it, or after its holder released it)."""
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(lease_name(election), LEASE_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity) if lease.spec and lease.spec.holder_identity else None
