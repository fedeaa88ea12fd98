"""Device plugins: is what a node advertises a count of whole, exclusive cards that the kubelet hands out?

Suanli requests whole cards through the extended resource and leaves the choice of physical cards to the kubelet
and the node's device plugin. That is only right where the plugin (1) advertises one unit per exclusive physical
card and (2) allocates at the kubelet's request, without annotations or a node lock written by a scheduler of its
own. Where either fails, discovery leaves the node out of gang placement with the reason this module gives; the
node is never counted as "that many cards". Sources for each convention are in ``docs/labels.md``.

Chosen: shared and partitioned capacity (MIG, time-slicing, MPS, HAMi splits, vNPU templates) is *excluded*, not
scheduled as a resource of its own. A gang of collectives on slices of one card is not a training job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from suanli.inventory import labels as L

# MindCluster's ascend-device-plugin (component/ascend-common/api/default_name.go): whole NPUs under these names,
# vNPU templates as "<name>-<n>c..." (not matched here, so never cards).
MINDCLUSTER_RESOURCES = frozenset(
    {"huawei.com/Ascend910", "huawei.com/Ascend310", "huawei.com/Ascend310P", "huawei.com/npu"}
)

# HAMi (charts/hami/templates/scheduler/device-configmap.yaml, values.yaml): per-model Ascend names (with the
# hyphenated "Ascend910B4-1"), slot counts for Hygon, and the node annotations its plugins register with.
_HAMI_REGISTER = re.compile(r"^(?:hami\.io|hygon\.cn)/node-(?:[\w.-]+-register|register-[\w.-]+)$")
_HAMI_HYGON = frozenset({"hygon.com/dcunum", "hygon.com/hcunum"})

# Units that are slices or shares of a card: never whole cards, named when they are all a node offers.
_PARTITIONS = re.compile(
    r"nvidia\.com/(?:mig-[\w.]+|gpu\.shared)"  # NVIDIA MIG "mixed" strategy; time-slicing renameByDefault=true
    r"|hygon\.com/hcu-mig-[\w.-]+"  # Hygon HCU plugin in MIG mode (RESOURCE_REGISTER_STRATEGY=mig)
    r"|huawei\.com/Ascend(?:910|310P?)-\d+c[\w.-]*"  # MindCluster vNPU templates (Ascend910-4c, Ascend310P-2c.1cpu)
)

# MindCluster soft partitioning ("chip1softsharedev"): one NPU shared by several pods (docs/en/scheduling/api/k8s.md).
_ASCEND_SOFT_SHARE = "huawei.com/scheduler.chip1softsharedev.enable"

DEVICE_PLUGIN_MODES = ("kubelet", "volcano", "hami")
"""Values of the ``suanli.io/device-plugin`` node label (see :data:`labels.DEVICE_PLUGIN`)."""


def hami_register_keys(annotations: Mapping[str, object]) -> tuple[str, ...]:
    """The HAMi registration annotations present (keys only: their values change on every handshake)."""
    return tuple(sorted(k for k in annotations if _HAMI_REGISTER.match(str(k))))


def partition_resources(advertised: Iterable[str]) -> list[str]:
    """The advertised resources that are slices or shares of cards (MIG, shared GPUs, vNPU templates)."""
    return sorted(r for r in advertised if _PARTITIONS.fullmatch(r))


def refusal(
    vendor: str,
    resource: str,
    node_labels: Mapping[str, str],
    annotations: Mapping[str, object],
) -> str | None:
    """Why Suanli cannot place whole-card gangs through ``resource`` on this node, or None when it can.

    The reason names what was seen and the fix, for ``Inventory.skipped()`` and the job's pending message.
    """
    mode = node_labels.get(L.DEVICE_PLUGIN, "kubelet")
    if mode not in DEVICE_PLUGIN_MODES:
        return (f"label {L.DEVICE_PLUGIN}={mode!r} is not one of {', '.join(DEVICE_PLUGIN_MODES)}: "
                "fix the label")
    hami = hami_register_keys(annotations)
    if mode == "hami" or hami or _is_hami_resource(vendor, resource):
        if hami:
            seen = f"annotation {hami[0]}"
        elif _is_hami_resource(vendor, resource):
            seen = f"resource {resource}"
        else:
            seen = f"label {L.DEVICE_PLUGIN}=hami"
        return (f"is managed by HAMi ({seen}): HAMi's device plugins advertise split units (cards x "
                "deviceSplitCount or vNPU templates) and allocate only pods its scheduler annotated and "
                "node-locked; run the vendor's own device plugin on nodes Suanli schedules")
    if mode == "volcano":
        return (f"label {L.DEVICE_PLUGIN}=volcano: MindCluster's ascend-device-plugin in Volcano mode "
                "(-volcanoType=true) allocates only pods Volcano annotated (huawei.com/<type>, predicate-time); "
                "run it with -volcanoType=false on nodes Suanli schedules")
    if vendor == "nvidia":
        return _nvidia_sharing(node_labels)
    if vendor == "huawei" and node_labels.get(_ASCEND_SOFT_SHARE, "").lower() == "true":
        return (f"label {_ASCEND_SOFT_SHARE}=true: MindCluster's soft partitioning shares each NPU between "
                "pods; disable it on nodes Suanli schedules")
    return None


def _is_hami_resource(vendor: str, resource: str) -> bool:
    if vendor == "huawei":
        return resource not in MINDCLUSTER_RESOURCES
    if vendor == "hygon":
        return resource in _HAMI_HYGON
    return False


def _nvidia_sharing(node_labels: Mapping[str, str]) -> str | None:
    """NVIDIA k8s-device-plugin README ("Catalog of Labels", time-slicing and MPS) and GFD README (MIG)."""
    product = node_labels.get("nvidia.com/gpu.product", "")
    if "-MIG-" in product:
        return (f"advertises MIG slices as nvidia.com/gpu (mig.strategy=single, product {product}), not whole "
                "GPUs; disable MIG or use the mixed strategy on nodes Suanli schedules")
    strategy = node_labels.get("nvidia.com/gpu.sharing-strategy", "none")
    replicas = node_labels.get("nvidia.com/gpu.replicas", "1")
    if strategy != "none" or product.endswith("-SHARED") or (replicas.isdigit() and int(replicas) > 1):
        return (f"shares its GPUs (sharing-strategy {strategy}, replicas {replicas}): nvidia.com/gpu counts "
                "time-slicing/MPS replicas, not exclusive GPUs; remove the sharing config on nodes Suanli "
                "schedules")
    return None
