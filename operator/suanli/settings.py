"""Operator settings: one dataclass, each field with its unit and why the default is what it is."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .inventory import InventorySettings


@dataclass(frozen=True)
class OperatorSettings:
    scheduler_name: str = "suanli"
    """spec.schedulerName of the pods Suanli binds; kube-scheduler ignores pods that name another."""
    resync_seconds: float = 5.0
    """Seconds between full passes over unfinished jobs when no event arrives: a safety net for a missed
    watch event, short enough that a stuck job is noticed within a few seconds."""
    bind_workers: int = 64
    """Parallel API calls when creating and binding a gang's pods: a 512-replica gang is 1,024 calls, and
    the API server, not the client, should be the limit."""
    gang_workers: int = 16
    """Gangs bound at once. Planning stays serial; binding is API-bound, so overlapping a few gangs keeps
    the API server busy instead of waiting on round trips one gang at a time."""
    peering: str | None = None
    """Leader-election name shared by the replicas: when set, only the holder of the Lease
    `<peering>-engine` (namespace POD_NAMESPACE) plans, binds and writes."""
    metrics_port: int = 9090
    """Port of the Prometheus /metrics endpoint; 0 turns it off (tests run several operators at once)."""
    preemption: bool = True
    """Let a higher-priority job that cannot fit restart lower-priority running gangs (Volcano and Kueue
    preempt by default too); off, priority only orders the queue."""
    request_timeout_seconds: float = 30.0
    """Per API request; a hung connection must not stall the scheduler forever."""
    delete_grace_seconds: int | None = None
    """Grace period when a restarted, preempted or finished gang's pods are deleted; None keeps each pod's own
    terminationGracePeriodSeconds (30 s by default), so training code can write a last checkpoint. Their
    cards count as held until the pods are really gone, so a new gang never lands on exiting containers."""
    node_lost_grace_seconds: float = 60.0
    """How long a node that runs a replica may stay not Ready before its gang restarts on NodeLost (a
    deleted node counts at once). The control plane marks a node not Ready only after 40-50 s without a
    heartbeat, and a kubelet restart or a late lease makes it flap; restarting a large gang costs its progress
    since the last checkpoint, while a gang on a node that is really gone is stalled in its collective for
    far longer (NCCL and HCCL time out after minutes). Kubernetes itself evicts only after 300 s. 0 restarts
    at once. The node takes no new work meanwhile."""
    inventory: InventorySettings = field(default_factory=InventorySettings)

    @classmethod
    def from_env(cls) -> OperatorSettings:
        """Read overrides from SUANLI_* environment variables (set by the Helm chart)."""
        return cls(
            scheduler_name=os.environ.get("SUANLI_SCHEDULER_NAME", cls.scheduler_name),
            resync_seconds=float(os.environ.get("SUANLI_RESYNC_SECONDS", cls.resync_seconds)),
            bind_workers=int(os.environ.get("SUANLI_BIND_WORKERS", cls.bind_workers)),
            gang_workers=int(os.environ.get("SUANLI_GANG_WORKERS", cls.gang_workers)),
            metrics_port=int(os.environ.get("SUANLI_METRICS_PORT", cls.metrics_port)),
            peering=os.environ.get("SUANLI_PEERING") or None,
            preemption=_flag(os.environ.get("SUANLI_PREEMPTION"), cls.preemption),
            delete_grace_seconds=_grace(os.environ.get("SUANLI_DELETE_GRACE_SECONDS")),
            node_lost_grace_seconds=_seconds("SUANLI_NODE_LOST_GRACE_SECONDS", cls.node_lost_grace_seconds),
        )


def _flag(value: str | None, default: bool) -> bool:
    """`true`/`false` (also 1/0, yes/no, on/off); anything else is an error that names the variable."""
    if value is None or value == "":
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"SUANLI_PREEMPTION={value!r}: use true or false")


def _seconds(name: str, default: float) -> float:
    """A duration in seconds >= 0 from the environment; anything else is an error that names the variable."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name}={value!r}: use seconds >= 0 (0 acts at once)")
    return seconds


def _grace(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise ValueError(f"SUANLI_DELETE_GRACE_SECONDS={value!r}: use whole seconds >= 0, or leave it unset")
    return seconds
