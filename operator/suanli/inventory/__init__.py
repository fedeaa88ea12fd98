"""Inventory: one normalised view of every accelerator node, and what is free on it.

Public surface::

    from suanli.inventory import Inventory, InventorySettings, AcceleratorNode, NodeState

    inventory = Inventory(InventorySettings(tolerated_taints=frozenset({"nvidia.com/gpu"})))
    inventory.upsert_node(node_dict)      # Kubernetes Node as JSON (metadata.labels, spec.taints, ...)
    inventory.upsert_pod(pod_dict)        # any pod; bound + non-terminal ones hold capacity
    inventory.remove_pod("ns", "name"); inventory.remove_node("name")
    inventory.get("node-1")               # AcceleratorNode | None
    inventory.state("node-1")             # NodeState: free cards per link domain, free CPU/memory
    inventory.skipped()                   # {"node-2": "label suanli.io/accelerator.count='eight' is ..."}
    inventory.skipped_nodes("huawei")     # [SkippedNode(name, reason, vendor)]: e.g. HAMi or Volcano-mode nodes

Only whole, exclusive cards the kubelet allocates count (:mod:`suanli.inventory.deviceplugins`).

Label and annotation names are in :mod:`suanli.inventory.labels`; vendor and model rules in
:mod:`suanli.inventory.models`.
"""

from suanli.inventory.inventory import Inventory, NodeState, Pool
from suanli.inventory.labels import LINK_DOMAIN_ANNOTATION
from suanli.inventory.models import (
    FAMILIES,
    VENDORS,
    ModelFamily,
    VendorProfile,
    canonical_model,
    family_of,
    model_matches,
)
from suanli.inventory.node import AcceleratorNode, SkippedNode
from suanli.inventory.pods import PodUsage, format_link_domains, parse_link_domains
from suanli.inventory.settings import InventorySettings

__all__ = [
    "FAMILIES",
    "LINK_DOMAIN_ANNOTATION",
    "VENDORS",
    "AcceleratorNode",
    "Inventory",
    "InventorySettings",
    "ModelFamily",
    "NodeState",
    "PodUsage",
    "Pool",
    "SkippedNode",
    "VendorProfile",
    "canonical_model",
    "family_of",
    "format_link_domains",
    "model_matches",
    "parse_link_domains",
]
