"""A generated heterogeneous fleet: Kubernetes Node dicts plus the pods that keep it busy.

Shared by the placement benchmark, the operator's end-to-end benchmark and the demo, so all three see the
same cluster.  Each vendor is labelled the way its own tools label real nodes (GFD for NVIDIA, the Ascend
device plugin's legacy labels, the Hygon HCU labeller), so discovery is exercised, not bypassed.

    from fleet import generate_fleet
    fleet = generate_fleet(10_000, occupancy=0.6, seed=1)
    fleet.nodes  # list of Node dicts;  fleet.pods: list of Pod dicts bound to them
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

NODES_PER_RACK = 16
RACKS_PER_ZONE = 8
REGIONS = 2
CARDS_PER_NODE = 8

_VENDORS: tuple[dict[str, Any], ...] = (
    {
        "vendor": "huawei",
        "model": "Ascend910B",
        "resource": "huawei.com/Ascend910",
        "labels": {
            "accelerator": "huawei-Ascend910",
            "accelerator-type": "module-910b-8",
            "host-arch": "huawei-arm",
            "feature.node.kubernetes.io/pci-19e5.present": "true",
        },
    },
    {
        "vendor": "nvidia",
        "model": "H100",
        "resource": "nvidia.com/gpu",
        "labels": {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "nvidia.com/gpu.count": "8",
            "nvidia.com/gpu.memory": "81559",
            "feature.node.kubernetes.io/pci-10de.present": "true",
        },
    },
    {
        "vendor": "hygon",
        "model": "DCU-K100-AI",
        "resource": "hygon.com/hcu",
        "labels": {
            "hygon.com/hcu": "true",
            "hygon.com/hcu.name": "K100_AI",
            "hygon.com/hcu.vram": "64G",
            "feature.node.kubernetes.io/pci-1d94.present": "true",
        },
    },
)


@dataclass
class Fleet:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    model_of_rack: dict[str, str] = field(default_factory=dict)


def node_dict(
    name: str, vendor_index: int, rack: str, zone: str, region: str, cards: int = CARDS_PER_NODE
) -> dict[str, Any]:
    """One Node as the API returns it, labelled by its vendor's conventions plus rack/zone/region."""
    spec = _VENDORS[vendor_index]
    labels = {
        "kubernetes.io/hostname": name,
        "suanli.io/rack": rack,
        "topology.kubernetes.io/zone": zone,
        "topology.kubernetes.io/region": region,
        **spec["labels"],
    }
    resources = {"cpu": "192", "memory": "2048Gi", "pods": "110", spec["resource"]: str(cards)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod_dict(
    namespace: str,
    name: str,
    node: str | None,
    resource: str,
    cards: int,
    cpu: str = "8",
    memory: str = "64Gi",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A running pod bound to ``node`` holding ``cards`` of ``resource`` (any scheduler's)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "main",
                    "resources": {
                        "requests": {"cpu": cpu, "memory": memory, resource: str(cards)},
                        "limits": {resource: str(cards)},
                    },
                }
            ],
        },
        "status": {"phase": "Running" if node else "Pending"},
    }


def generate_fleet(
    nodes: int,
    *,
    occupancy: float = 0.6,
    seed: int = 0,
    nodes_per_rack: int = NODES_PER_RACK,
    racks_per_zone: int = RACKS_PER_ZONE,
    regions: int = REGIONS,
) -> Fleet:
    """``nodes`` nodes, a third each Ascend 910B x8, H100 x8, Hygon K100-AI x8, in homogeneous racks.

    ``nodes_per_rack`` nodes per rack, ``racks_per_zone`` racks per zone, zones split evenly over
    ``regions`` regions.  About ``occupancy`` of all cards are held by pods of 1, 2, 4 and 8 cards that
    carry no Suanli annotation (another scheduler's), so ring attribution is exercised too.
    """
    rng = random.Random(seed)
    fleet = Fleet()
    racks = -(-nodes // nodes_per_rack)
    zones = -(-racks // racks_per_zone)
    for i in range(nodes):
        rack_index = i // nodes_per_rack
        zone_index = rack_index // racks_per_zone
        region_index = min(zone_index * regions // max(zones, 1), regions - 1)
        vendor_index = rack_index % len(_VENDORS)
        rack, zone, region = f"r{rack_index}", f"z{zone_index}", f"region-{region_index}"
        name = f"node-{i:05d}"
        fleet.model_of_rack[rack] = _VENDORS[vendor_index]["model"]
        fleet.nodes.append(node_dict(name, vendor_index, rack, zone, region))
        for j, cards in enumerate(_occupy(rng, occupancy)):
            fleet.pods.append(
                pod_dict("busy", f"{name}-{j}", name, _VENDORS[vendor_index]["resource"], cards)
            )
    return fleet


def _occupy(rng: random.Random, occupancy: float) -> list[int]:
    """Pod sizes for one node: whole-node, empty or partly used nodes averaging ``occupancy`` of 8 cards."""
    # A mix seen on real fleets: many whole-node jobs, some empty nodes, the rest fragmented.
    full = occupancy * 0.75
    empty = (1 - occupancy) * 0.625
    draw = rng.random()
    if draw < full:
        return [CARDS_PER_NODE]
    if draw < full + empty:
        return []
    used = rng.randint(1, CARDS_PER_NODE - 1)
    sizes: list[int] = []
    ring_free = [4, 4]
    while used:
        size = rng.choice([s for s in (4, 2, 1) if s <= used and s <= max(ring_free)])
        ring = max(range(2), key=lambda r: (ring_free[r] >= size, -ring_free[r]))
        ring_free[ring] -= size
        sizes.append(size)
        used -= size
    return sizes
