"""Inventory settings: which labels name the topology levels, and which taints our pods tolerate."""

from __future__ import annotations

from dataclasses import dataclass

from suanli.inventory import labels


@dataclass(frozen=True)
class InventorySettings:
    """How the inventory reads nodes.  Defaults fit clusters labelled by the usual vendor tools."""

    rack_labels: tuple[str, ...] = labels.RACK_LABELS
    """Label keys naming a node's rack, first present wins.  Ours first, then MindCluster's topology tree
    and Volcano's label-based hypernodes, so clusters labelled for those need no relabelling.  A node with
    none of them is a rack of its own: we never assume two unlabelled nodes share a switch."""
    zone_labels: tuple[str, ...] = labels.ZONE_LABELS
    """Label keys naming the zone; unlabelled nodes share one unnamed zone (a single-zone cluster)."""
    region_labels: tuple[str, ...] = labels.REGION_LABELS
    """Label keys naming the region; unlabelled nodes share one unnamed region."""
    tolerated_taints: frozenset[str] = frozenset(
        {"nvidia.com/gpu", "huawei.com/Ascend910", "huawei.com/npu", "hygon.com/dcu", "hygon.com/hcu"}
    )
    """Taint keys (any value, any effect) our training pods tolerate.  Cloud providers taint accelerator
    nodes with the resource name to keep other pods off them; the renderer must add matching tolerations.
    A NoSchedule/NoExecute taint with any other key takes the node out of placement."""
    require_ready: bool = True
    """Leave nodes whose Ready condition is not True, or missing, out of placement: their kubelet cannot start
    pods."""
