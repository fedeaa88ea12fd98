"""Builders for Node and Pod dicts in the shapes the Kubernetes API returns, per vendor convention."""

from __future__ import annotations

from typing import Any

from suanli.inventory import Inventory
from suanli.placement import Candidate, GangRequest
from suanli.topology import Level

# Label sets as each vendor's own tooling writes them (GFD, Ascend device plugin, Hygon HCU labeller).
GFD_H100 = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/cuda.driver.major": "580",
    "feature.node.kubernetes.io/pci-10de.present": "true",
}
ASCEND_LEGACY_910B = {
    "accelerator": "huawei-Ascend910",
    "accelerator-type": "module-910b-8",
    "host-arch": "huawei-arm",
    "servertype": "Ascend910B-20",
    "feature.node.kubernetes.io/pci-19e5.present": "true",
}
HYGON_HCU_K100 = {
    "hygon.com/hcu": "true",
    "hygon.com/hcu.name": "K100_AI",
    "hygon.com/hcu.cu-count": "120",
    "hygon.com/hcu.vram": "64G",
    "hygon.com/hcu.driver-version": "6.3.8",
}
VENDOR_LABELS = {
    "huawei": (ASCEND_LEGACY_910B, "huawei.com/Ascend910"),
    "nvidia": (GFD_H100, "nvidia.com/gpu"),
    "hygon": (HYGON_HCU_K100, "hygon.com/hcu"),
}


def node(
    name: str,
    labels: dict[str, str] | None = None,
    resources: dict[str, str] | None = None,
    *,
    rack: str | None = None,
    zone: str | None = None,
    region: str | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    ready: str = "True",
    cpu: str = "192",
    memory: str = "2048Gi",
) -> dict[str, Any]:
    all_labels = dict(labels or {})
    for key, value in (
        ("suanli.io/rack", rack),
        ("topology.kubernetes.io/zone", zone),
        ("topology.kubernetes.io/region", region),
    ):
        if value is not None:
            all_labels[key] = value
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110", **(resources or {})}
    return {
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"taints": taints or [], **({"unschedulable": True} if unschedulable else {})},
        "status": {
            "capacity": dict(allocatable),
            "allocatable": dict(allocatable),
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def vendor_node(name: str, vendor: str = "huawei", cards: int = 8, **kwargs: Any) -> dict[str, Any]:
    labels, resource = VENDOR_LABELS[vendor]
    return node(name, dict(labels), {resource: str(cards)}, **kwargs)


def pod(
    name: str,
    node_name: str | None,
    resources: dict[str, str],
    *,
    namespace: str = "busy",
    phase: str = "Running",
    annotations: dict[str, str] | None = None,
    init: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "resources": {"requests": resources}}]}
    if node_name is not None:
        spec["nodeName"] = node_name
    if init:
        spec["initContainers"] = [
            {"name": f"init{i}", "resources": {"requests": r}} for i, r in enumerate(init)
        ]
    return {
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def gang(
    replicas: int,
    per_replica: int = 8,
    *,
    vendor: str = "huawei",
    model: str | None = "Ascend910B",
    min_replicas: int | None = None,
    required: Level | None = None,
    **kwargs: Any,
) -> GangRequest:
    return GangRequest(
        key="team/job",
        replicas=replicas,
        min_replicas=min_replicas or replicas,
        accelerators_per_replica=per_replica,
        candidates=kwargs.pop("candidates", (Candidate(vendor, model),)),
        required_level=required,
        **kwargs,
    )


def inventory_of(*nodes: dict[str, Any], pods: tuple[dict[str, Any], ...] = ()) -> Inventory:
    inventory = Inventory()
    for item in nodes:
        inventory.upsert_node(item)
    for item in pods:
        inventory.upsert_pod(item)
    return inventory
