"""What the planner is asked (a gang) and what it answers (a placement, or why there is none)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from suanli.inventory.models import VENDOR_BY_NAME
from suanli.topology import Level


@dataclass(frozen=True)
class Candidate:
    """One acceptable kind of card, in the job's order of preference."""

    vendor: str
    """``nvidia``, ``huawei`` or ``hygon``."""
    model: str | None = None
    """Model name (``Ascend910B``, ``H100``, ``K100``...), matched after normalisation and including
    suffixed variants (see :func:`suanli.inventory.models.model_matches`); None = any model of the vendor
    (still one model per job unless mixing is allowed)."""
    min_memory_gib: float | None = None
    """Smallest acceptable memory per card."""

    def __post_init__(self) -> None:
        if self.vendor not in VENDOR_BY_NAME:
            raise ValueError(f"candidate vendor {self.vendor!r} is not one of {', '.join(VENDOR_BY_NAME)}")
        if self.min_memory_gib is not None and not self.min_memory_gib >= 0:
            raise ValueError(f"candidate min_memory_gib={self.min_memory_gib} must be >= 0")

    def describe(self) -> str:
        return self.model or f"{self.vendor} (any model)"


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration, matched against node taints exactly as the kubelet and kube-scheduler do."""

    key: str = ""
    """Empty with ``exists`` tolerates every taint."""
    exists: bool = False
    """operator Exists (any value) rather than Equal."""
    value: str = ""
    effect: str = ""
    """Empty tolerates every effect."""

    def tolerates(self, taint: tuple[str, str, str]) -> bool:
        key, value, effect = taint
        if self.effect and self.effect != effect:
            return False
        if self.exists:
            return not self.key or self.key == key
        return self.key == key and self.value == value


@dataclass(frozen=True)
class GangRequest:
    """A gang of identical replicas to place all at once (``min_replicas``..``replicas``) or not at all."""

    key: str
    """``namespace/name`` of the job; used in messages and as the stable tie-break seed."""
    replicas: int
    min_replicas: int
    accelerators_per_replica: int
    candidates: tuple[Candidate, ...]
    cpu_millis: int = 0
    memory_bytes: int = 0
    """CPU (millicores) and memory (bytes) each replica requests."""
    required_level: Level | None = None
    """Widest level the gang may span (None: anywhere in the cluster)."""
    preferred_level: Level | None = None
    """A soft target: reported as met or not; the planner always picks the narrowest domain anyway."""
    avoid_nodes: frozenset[str] = frozenset()
    """Nodes not to use (e.g. where a replica just failed)."""
    allow_mixing: bool = False
    """Let one gang combine vendors/models when no single candidate fits."""
    node_selector: tuple[tuple[str, str], ...] = ()
    """Labels a node must carry: the pod template's nodeSelector (a kubelet refuses a pod bound elsewhere)."""
    tolerations: tuple[Toleration, ...] = ()
    """The pod template's tolerations: a node whose taints (beyond those the operator tolerates itself) are
    not all tolerated is left out."""
    near_nodes: frozenset[str] = frozenset()
    """Where the gang ran before a restart. Among placements as good by the objective's first two terms (as
    many replicas, as narrow a level, same candidate), one in those nodes' narrowest common domain wins."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas={self.replicas} must be at least 1")
        if not 1 <= self.min_replicas <= self.replicas:
            raise ValueError(
                f"min_replicas={self.min_replicas} must be between 1 and replicas={self.replicas}"
            )
        if self.accelerators_per_replica < 1:
            raise ValueError(f"accelerators_per_replica={self.accelerators_per_replica} must be at least 1")
        if not self.candidates:
            raise ValueError("candidates is empty: name at least one accelerator vendor")
        if self.cpu_millis < 0 or self.memory_bytes < 0:
            raise ValueError("cpu_millis and memory_bytes must not be negative")


@dataclass(frozen=True)
class ReplicaPlacement:
    """Where one replica goes."""

    index: int
    node: str
    resource: str
    """Extended resource to request on that node (``huawei.com/Ascend910``, ``nvidia.com/gpu``...)."""
    count: int
    """Cards to request."""
    link_domains: tuple[int, ...]
    """In-node link domains the cards come from; write them to the pod's ``suanli.io/link-domain``."""
    domains: Mapping[Level, str]
    """Label values at RACK, ZONE and REGION (``""`` where unlabelled)."""
    vendor: str
    model: str
    candidate_index: int = 0
    """Index into ``GangRequest.candidates`` of the candidate this replica was placed as (they differ per
    replica only in a mixed gang)."""


@dataclass(frozen=True)
class Placement:
    """A gang that fits, replicas ordered so neighbouring ranks sit close together."""

    candidate_index: int
    """Index into ``GangRequest.candidates``; for a mixed gang, the first candidate used."""
    vendor: str
    model: str
    """Shared by all replicas; ``"mixed"`` when a mixing gang combines several."""
    replicas: tuple[ReplicaPlacement, ...]
    span: Mapping[Level, int]
    """How many domains of each level the gang uses (NODE, RACK, ZONE, REGION)."""
    level: Level | None
    """Narrowest level one of whose domains holds the whole gang; None when it spans regions."""
    preferred_met: bool
    leftover: int
    """Replica slots still free in the racks used: lower is a tighter fit, less fragmentation."""


@dataclass(frozen=True)
class Unplaceable:
    """Nothing fits now: one list of short explanations per candidate, and a one-line summary."""

    reasons: tuple[tuple[str, ...], ...]
    summary: str
    mixed_reasons: tuple[str, ...] = field(default=())
    """Why combining candidates did not help either (only when the request allows mixing)."""
