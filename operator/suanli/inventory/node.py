"""The normalised view of one accelerator node, whatever convention labelled it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from suanli.topology import Level

Taint = tuple[str, str, str]
"""(key, value, effect) of a node taint; value ``""`` when the taint has none."""


def describe_taint(taint: Taint) -> str:
    key, value, effect = taint
    return f"{key}{'=' + value if value else ''}:{effect}"


@dataclass(frozen=True, slots=True)
class AcceleratorNode:
    """What discovery learned about a node's cards and place; usage lives in the inventory, not here."""

    name: str
    vendor: str
    """``nvidia``, ``huawei`` or ``hygon``."""
    model: str
    """Canonical model (``Ascend910B``, ``H100``, ``DCU-K100``) or ``unknown``."""
    resource: str
    """The extended resource the node advertises for whole cards (``huawei.com/Ascend910``...)."""
    cards: int
    """Cards installed (device-plugin capacity)."""
    usable_cards: int
    """Cards that may be handed out: allocatable, further capped by our agent's healthy count."""
    memory_mib: int | None
    """Memory per card; None when no label says and the model's datasheet value is unknown."""
    link_domains: tuple[int, ...]
    """Sizes of the in-node link domains (``(4, 4)`` for two HCCS rings); sums to ``cards``."""
    rack: str
    zone: str
    region: str
    """Label values of each level; ``""`` where unlabelled."""
    cpu_millis: int
    memory_bytes: int
    """Allocatable CPU (millicores) and memory (bytes)."""
    schedulable: bool
    why_unschedulable: str
    """Empty when schedulable; else ``cordoned``, ``not Ready`` or ``not Ready (no Ready condition)``."""
    membw_gbs: float | None = None
    fma_tflops: float | None = None
    """Throughput our agent measured, when it did."""
    taints: tuple[Taint, ...] = ()
    """NoSchedule/NoExecute taints the operator does not tolerate by itself (InventorySettings.tolerated_taints):
    only a job whose template tolerates every one of them may use the node."""
    tolerated_taint_keys: tuple[str, ...] = ()
    """Keys of the NoSchedule/NoExecute taints it carries that the operator tolerates by itself: the pods placed
    here must tolerate them (render.gang.operator_tolerations)."""
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    """All of the node's labels, for the template's nodeSelector (changes are seen by the inventory's
    fingerprint, so they are left out of equality)."""

    @property
    def rack_id(self) -> tuple[str, str, str]:
        """Rack identity qualified by its zone and region; an unlabelled node is a rack of its own."""
        return (self.region, self.zone, self.rack or "\0" + self.name)

    @property
    def zone_id(self) -> tuple[str, str]:
        return (self.region, self.zone)

    def domain(self, level: Level) -> str:
        """The label value for ``level`` (the node name for NODE)."""
        if level is Level.RACK:
            return self.rack
        if level is Level.ZONE:
            return self.zone
        if level is Level.REGION:
            return self.region
        return self.name


@dataclass(frozen=True, slots=True)
class SkippedNode:
    """A node that looks like an accelerator node but whose labels or resources we cannot trust."""

    name: str
    reason: str
    vendor: str | None = None
    """The vendor whose cards the node carries, when known: lets a pending job say "the huawei nodes were left
    out because ..." instead of only "no capacity"."""
