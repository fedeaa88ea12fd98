"""Discovery: one Kubernetes Node dict in, one :class:`AcceleratorNode` (or a reason to skip it) out.

Every label convention the field uses is read (NFD, NVIDIA GFD, every Ascend label generation MindCluster shipped,
Hygon ``dcu``/``hcu``); our own ``suanli.io/*`` labels win when present.  Only whole, exclusive cards count:
shared, partitioned or foreign-scheduler capacity (MIG, time-slicing, HAMi) is refused by
:mod:`suanli.inventory.deviceplugins`.  Bad input
never raises: a node whose labels conflict or do not parse is returned as :class:`SkippedNode` with a
reason naming the label and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from suanli.inventory import labels as L
from suanli.inventory.deviceplugins import partition_resources, refusal
from suanli.inventory.models import (
    VENDOR_BY_NAME,
    VENDORS,
    VendorProfile,
    canonical_model,
    family_of,
    is_card_resource,
)
from suanli.inventory.node import AcceleratorNode, SkippedNode, Taint
from suanli.inventory.quantity import QuantityError, bytes_of, cpu_millis, parse_quantity
from suanli.inventory.settings import InventorySettings

_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_LINK_DOMAINS = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|)\s*$", re.IGNORECASE)
_NFD_CLASS_VENDOR = re.compile(
    r"feature\.node\.kubernetes\.io/pci-(?P<cls>[0-9a-f]{2,6})_(?P<vendor>[0-9a-f]{4})\.present"
)
_MIB_PER_UNIT = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


class _Skip(Exception):
    """Raised inside discovery to turn a node into a SkippedNode; never escapes this module."""

    def __init__(self, reason: str, vendor: str | None = None) -> None:
        super().__init__(reason)
        self.vendor = vendor


def discover(node: Mapping[str, Any], settings: InventorySettings) -> AcceleratorNode | SkippedNode | None:
    """Normalise ``node``; None when it has no accelerator at all (a CPU node, not worth reporting)."""
    meta = node.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not name:
        raise ValueError("node has no metadata.name: pass the Node object as the API returns it")
    try:
        return _discover(name, node, settings)
    except _Skip as skip:
        return SkippedNode(name=name, reason=str(skip), vendor=skip.vendor)


def _discover(name: str, node: Mapping[str, Any], settings: InventorySettings) -> AcceleratorNode | None:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    node_labels: Mapping[str, str] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    capacity = _counts(status.get("capacity") or {})
    allocatable = _counts(status.get("allocatable") or {})

    # Which vendor: the device plugin's resources are the ground truth the kubelet enforces.
    by_resource: dict[str, str] = {}
    for profile in VENDORS:
        for advertised in sorted(set(capacity) | set(allocatable)):
            if profile.is_card_resource(advertised) and max(capacity.get(advertised, 0),
                                                            allocatable.get(advertised, 0)) > 0:
                by_resource.setdefault(profile.name, advertised)
    if len(by_resource) > 1:
        found = ", ".join(f"{res} ({v})" for v, res in sorted(by_resource.items()))
        raise _Skip(f"advertises cards of several vendors: {found}; one vendor per node is supported")
    ours = node_labels.get(L.VENDOR)
    if ours is not None and ours not in VENDOR_BY_NAME:
        raise _Skip(f"label {L.VENDOR}={ours!r} is not one of {', '.join(VENDOR_BY_NAME)}")
    by_label = [v.name for v in VENDORS if _has_vendor_labels(v, node_labels)]
    if ours is not None and by_resource and ours not in by_resource:
        (other,) = by_resource
        raise _Skip(f"label {L.VENDOR}={ours} conflicts with resource {by_resource[other]} ({other}); "
                    "fix the agent's label or the device plugin")
    vendor_name = ours or next(iter(by_resource), None) or (by_label[0] if len(by_label) == 1 else None)
    if vendor_name is None:
        if len(by_label) > 1:
            named = ", ".join(by_label)
            raise _Skip(f"labels name several vendors ({named}) and no card resource says which")
        return None
    vendor = VENDOR_BY_NAME[vendor_name]
    resource = by_resource.get(vendor_name)
    if resource is None:
        resource = _preferred_resource(vendor, capacity, allocatable)
    if resource is None:
        offered = {*(status.get("capacity") or {}), *(status.get("allocatable") or {})}
        if slices := partition_resources(str(r) for r in offered):
            raise _Skip(f"labelled as {vendor_name} but advertises only slices or shares of cards "
                        f"({', '.join(slices)}), no whole cards", vendor_name)
        raise _Skip(f"labelled as {vendor_name} but advertises no card resource "
                    f"({' / '.join(vendor.resources)}): is the device plugin running?", vendor_name)
    if why := refusal(vendor_name, resource, node_labels, meta.get("annotations") or {}):
        raise _Skip(why, vendor_name)

    cards = capacity.get(resource, allocatable.get(resource, 0))
    free_cards = min(allocatable.get(resource, cards), cards)
    declared = _int_label(node_labels, L.COUNT)
    if declared is not None and declared != cards:
        raise _Skip(f"label {L.COUNT}={declared} disagrees with capacity {resource}={cards}; "
                    "the agent or the device plugin sees a different card count")
    healthy = _int_label(node_labels, L.HEALTHY)
    if healthy is not None:
        if healthy > cards:
            raise _Skip(f"label {L.HEALTHY}={healthy} exceeds the {cards} cards installed")
        free_cards = min(free_cards, healthy)

    model = _model(vendor, node_labels, resource)
    family = family_of(vendor_name, model)
    memory_mib = _int_label(node_labels, L.MEMORY_MIB)
    if memory_mib is None:
        memory_mib = _vendor_memory(vendor, node_labels)
    if memory_mib is None:
        memory_mib = family.memory_mib.get(model)

    link_domains = _link_domains(node_labels, cards) or family.link_domains.get(cards) or (cards,)

    def first(keys: tuple[str, ...]) -> str:
        return next((node_labels[k] for k in keys if node_labels.get(k)), "")

    try:
        cpu = cpu_millis(allocatable_raw(status, "cpu"))
        memory = bytes_of(allocatable_raw(status, "memory"))
    except QuantityError as err:
        raise _Skip(f"status.allocatable: {err}") from None

    return AcceleratorNode(
        name=name,
        vendor=vendor_name,
        model=model,
        resource=resource,
        cards=cards,
        usable_cards=free_cards,
        memory_mib=memory_mib,
        link_domains=link_domains,
        rack=first(settings.rack_labels),
        zone=first(settings.zone_labels),
        region=first(settings.region_labels),
        cpu_millis=cpu,
        memory_bytes=memory,
        schedulable=not (why := _why_unschedulable(spec, status, settings)),
        why_unschedulable=why,
        taints=_blocking_taints(spec, settings),
        tolerated_taint_keys=_tolerated_taint_keys(spec, settings),
        membw_gbs=_float_label(node_labels, L.MEMBW_GBS),
        fma_tflops=_float_label(node_labels, L.FMA_TFLOPS),
        labels=node_labels,
    )


def allocatable_raw(status: Mapping[str, Any], resource: str) -> object:
    """Allocatable if reported, else capacity, else zero (a node that reports nothing fits nothing)."""
    for section in ("allocatable", "capacity"):
        value = (status.get(section) or {}).get(resource)
        if value is not None:
            return value
    return "0"


def _counts(resources: Mapping[str, Any]) -> dict[str, int]:
    """Card counts of the accelerator resources; other resources are parsed elsewhere or ignored."""
    out: dict[str, int] = {}
    for key, value in resources.items():
        if not is_card_resource(key):
            continue
        try:
            amount = parse_quantity(value)
        except QuantityError as err:
            raise _Skip(f"resource {key}: {err}") from None
        if amount != int(amount):
            raise _Skip(f"resource {key}={value} is not a whole number of cards")
        out[key] = int(amount)
    return out


def _preferred_resource(vendor: VendorProfile, capacity: Mapping[str, int],
                        allocatable: Mapping[str, int]) -> str | None:
    present = [r for r in (*capacity, *allocatable) if vendor.is_card_resource(r)]
    return min(present, key=lambda r: (r not in vendor.resources, r)) if present else None


def _has_vendor_labels(vendor: VendorProfile, node_labels: Mapping[str, str]) -> bool:
    if vendor.has_presence_label(node_labels):
        return True
    for key, value in node_labels.items():
        if value.lower() != "true":
            continue
        if key == L.NFD_PCI_PRESENT.format(pci_id=vendor.pci_id) and not vendor.nfd_classes:
            return True
        found = _NFD_CLASS_VENDOR.fullmatch(key)
        if found and found["vendor"] == vendor.pci_id and found["cls"].startswith(vendor.nfd_classes or ("",)):
            return True
    return False


def _model(vendor: VendorProfile, node_labels: Mapping[str, str], resource: str) -> str:
    ours = node_labels.get(L.MODEL, "").strip()
    if ours:
        # Our agent writes canonical names; normalise anyway so "Ascend910b" and "910B" agree.
        return canonical_model(vendor.name, ours) or ours
    for key in vendor.model_labels:
        raw = node_labels.get(key)
        if raw and (model := canonical_model(vendor.name, raw)):
            return model
    # HAMi and renamed plugins put the model in the resource name (huawei.com/Ascend910B3).
    suffix = resource.split("/", 1)[-1]
    if suffix not in ("gpu", "npu", "dcu", "hcu", "dcunum", "hcunum"):
        model = canonical_model(vendor.name, suffix)
        if model:
            return model
    for key in vendor.family_labels:
        raw = node_labels.get(key)
        if raw and (model := canonical_model(vendor.name, raw)):
            return model
    return "unknown"


def _vendor_memory(vendor: VendorProfile, node_labels: Mapping[str, str]) -> int | None:
    for key in vendor.memory_labels:
        raw = node_labels.get(key)
        if raw is None:
            continue
        match = _MEMORY.match(raw)
        if match is None:
            raise _Skip(f"label {key}={raw!r} is not a memory size such as 65536 (MiB) or 64G")
        unit = match[2][:1].upper()
        return int(float(match[1]) * _MIB_PER_UNIT[unit])
    return None


def _int_label(node_labels: Mapping[str, str], key: str) -> int | None:
    raw = node_labels.get(key)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise _Skip(f"label {key}={raw!r} is not a non-negative whole number")
    return int(raw)


def _float_label(node_labels: Mapping[str, str], key: str) -> float | None:
    raw = node_labels.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _Skip(f"label {key}={raw!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise _Skip(f"label {key}={raw!r} must be a finite, non-negative number")
    return value


def _link_domains(node_labels: Mapping[str, str], cards: int) -> tuple[int, ...] | None:
    raw = node_labels.get(L.LINK_DOMAINS)
    if raw is None:
        return None
    sizes: tuple[int, ...]
    if match := _LINK_DOMAINS.match(raw):
        sizes = (int(match[2]),) * int(match[1])
    elif all(part.strip().isdigit() for part in raw.replace("+", "_").split("_")):
        # "_" is the label-safe separator ("7_1"); "+" is kept for hand-written values of older docs.
        sizes = tuple(int(part) for part in raw.replace("+", "_").split("_"))
    else:
        raise _Skip(f"label {L.LINK_DOMAINS}={raw!r} is neither <domains>x<cards> (2x4) nor sizes (4_4)")
    if sum(sizes) != cards or 0 in sizes:
        raise _Skip(f"label {L.LINK_DOMAINS}={raw!r} describes {sum(sizes)} cards but the node has {cards}")
    return sizes


def _why_unschedulable(
    spec: Mapping[str, Any], status: Mapping[str, Any], settings: InventorySettings
) -> str:
    if spec.get("unschedulable"):
        return "cordoned"
    if settings.require_ready:
        ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
        if ready is None:
            # As the job workers see it (controller/cache.ready): no kubelet has said it can start pods.
            return "not Ready (no Ready condition)"
        if ready.get("status") != "True":
            return "not Ready"
    return ""


def _tolerated_taint_keys(spec: Mapping[str, Any], settings: InventorySettings) -> tuple[str, ...]:
    return tuple(sorted({
        str(t["key"]) for t in spec.get("taints") or ()
        if t.get("effect") in _BLOCKING_EFFECTS and t.get("key") in settings.tolerated_taints
    }))


def _blocking_taints(spec: Mapping[str, Any], settings: InventorySettings) -> tuple[Taint, ...]:
    return tuple(
        (str(t.get("key") or ""), str(t.get("value") or ""), str(t["effect"]))
        for t in spec.get("taints") or ()
        if t.get("effect") in _BLOCKING_EFFECTS and t.get("key") not in settings.tolerated_taints
    )
