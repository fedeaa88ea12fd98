"""The AcceleratorNode the agent writes: one per node, named after it, owned by it.

Built from a report with the models of ``suanli.api`` and validated by them before it is sent, so the
agent can never write an object the API server or the operator would reject. Conditions:

- ``Probed``: True after a probe that could look at the node; False (ProbeFailed) when it could not
  (kernels library missing, sysfs unreadable). Devices, labels and lastProbeTime then keep the last
  good probe's values.
- ``Healthy``: True (AllHealthy), False (DataCorruption when a card failed verification, else
  CardsUnhealthy, CardsDegraded, or AllUnhealthy when the node is tainted), Unknown (HealthUnknown:
  some card's health could not be read; NoAccelerators; ProbeFailed).
- ``Benchmarked``: True (Measured), False (BenchFailed), Unknown (NotMeasured).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from suanli.api import (
    AcceleratorNode,
    AcceleratorNodeSpec,
    AcceleratorNodeStatus,
    Condition,
    ConditionStatus,
    Device,
    DeviceHealth,
    Throughput,
    parse_node,
    set_condition,
)
from suanli.api.acceleratornode import PLURAL
from suanli.api.base import GROUP, VERSION

from .labels import TAINT_EFFECT, TAINT_KEY
from .report import Card, NodeReport
from .throughput import VENDOR_BACKEND, Measurement

__all__ = ["GROUP", "PLURAL", "VERSION", "accelerator_node", "probe_failed_status", "report_status"]

VERSIONS_ANNOTATION = "suanli.io/versions"
"""JSON of the probe's versions (suanli, vendor drivers): the API has no driver field yet."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "suanli-agent"}
_MAX_ERRORS = 32
_MAX_ERROR_LENGTH = 1024


def accelerator_node(node_name: str, node_uid: str, versions: Mapping[str, str] | None) -> dict[str, Any]:
    """The object's metadata and spec (status goes through the status subresource).

    The owner reference makes the garbage collector delete the record with its Node; it is not a
    controller reference and does not block the Node's deletion.
    """
    metadata: dict[str, Any] = {
        "name": node_name,
        "labels": dict(MANAGED_BY),
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
    }
    if versions:
        metadata["annotations"] = {VERSIONS_ANNOTATION: json.dumps(dict(versions), sort_keys=True)}
    obj = AcceleratorNode(metadata=metadata, spec=AcceleratorNodeSpec(node_name=node_name))
    return obj.to_wire()


_MAX_MESSAGE = 8192
"""Condition messages list cards with the driver's or the gate's words; 64 cards could exceed what a
reader wants (and, unclipped, the API's 32 KiB limit)."""


def _condition(
    kind: str, status: ConditionStatus, reason: str, message: str, now: datetime
) -> Condition:
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=now)


def _listed(cards: list[Card]) -> str:
    return "; ".join(
        f"card {c.index} ({c.bus_id}): " + (f"{c.reason}: " if c.reason and c.reason != "DriverReported" else "")
        + (c.detail or c.health.value.lower())
        for c in cards
    )


def _health_condition(report: NodeReport, tainted: bool, now: datetime) -> Condition:
    cards = report.vendor_cards
    if not cards:
        return _condition("Healthy", ConditionStatus.UNKNOWN, "NoAccelerators", "no accelerator found", now)
    bad = [c for c in cards if c.health == DeviceHealth.UNHEALTHY]
    slow = [c for c in cards if c.health == DeviceHealth.DEGRADED]
    unknown = [c for c in cards if c.health == DeviceHealth.UNKNOWN]
    if bad or slow:
        listed = _listed(bad + slow)
        if tainted:
            message = (f"no usable card of {len(cards)}, node tainted {TAINT_KEY}=true:{TAINT_EFFECT}: "
                       f"{listed}")
            return _condition("Healthy", ConditionStatus.FALSE, "AllUnhealthy", message, now)
        counts = ", ".join(p for p in (f"{len(bad)} unhealthy" if bad else "",
                                       f"{len(slow)} degraded" if slow else "") if p)
        message = f"{counts} of {len(cards)} cards, {report.usable} usable: {listed}"
        if any(c.reason == "DataCorruption" for c in bad):
            return _condition("Healthy", ConditionStatus.FALSE, "DataCorruption", message, now)
        reason = "CardsUnhealthy" if bad else "CardsDegraded"
        return _condition("Healthy", ConditionStatus.FALSE, reason, message, now)
    if unknown:
        why = "; ".join(report.health_unknown_because) or "; ".join(
            f"card {c.index} ({c.bus_id}): {c.detail or 'no health reported'}" for c in unknown
        )
        message = (f"health of {len(unknown)} of {len(cards)} cards unknown (counted as usable): {why}")
        return _condition("Healthy", ConditionStatus.UNKNOWN, "HealthUnknown", message, now)
    return _condition("Healthy", ConditionStatus.TRUE, "AllHealthy", f"all {len(cards)} cards healthy", now)


def _throughput(report: NodeReport, measurement: Measurement | None) -> dict[str, Throughput]:
    """Per-card numbers by bus id, when the bench's device numbering provably matches the cards."""
    if (
        measurement is None
        or report.vendor is None
        or measurement.backend != VENDOR_BACKEND[report.vendor]
        or measurement.devices_seen != report.count
    ):
        return {}
    out: dict[str, Throughput] = {}
    for i, card in enumerate(report.vendor_cards):
        if i in measurement.per_device:
            copy_gbs, _fma = measurement.per_device[i]
            # Throughput has no FMA field (its matmul field is a different, tensor-core number):
            # the FMA rate is published in the fma-tflops label and the Benchmarked condition only.
            out[card.bus_id] = Throughput(memory_bandwidth_gbps=copy_gbs)
    return out


def _errors(*groups: list[str] | tuple[str, ...]) -> list[str]:
    flat = [e if len(e) <= _MAX_ERROR_LENGTH else e[: _MAX_ERROR_LENGTH - 3] + "..." for g in groups for e in g]
    return flat[:_MAX_ERRORS]


def report_status(
    report: NodeReport,
    measurement: Measurement | None,
    bench_note: str,
    previous: AcceleratorNodeStatus | None,
    tainted: bool,
    now: datetime,
) -> AcceleratorNodeStatus:
    """The status after a successful probe.

    ``measurement`` is this process's last bench (None when none ran); without one, per-card numbers
    and the Benchmarked condition carry over from ``previous``, like the throughput labels.
    """
    prev_by_bus = {d.bus_id: d for d in previous.devices} if previous else {}
    measured = _throughput(report, measurement)
    devices = []
    for card in report.cards:
        old = prev_by_bus.get(card.bus_id)
        throughput = measured.get(card.bus_id)
        if throughput is None and (measurement is None or not measurement.ok) and old is not None:
            throughput = old.throughput
        devices.append(
            Device(
                index=card.index,
                vendor=card.vendor,
                model=card.model,
                memory_mib=card.memory_mib,
                health=card.health,
                health_reason=card.reason,
                bus_id=card.bus_id,
                numa_node=card.numa_node,
                link_domain=card.link_domain,
                throughput=throughput,
            )
        )
    conditions = list(previous.conditions) if previous else []
    conditions = set_condition(
        conditions,
        _condition("Probed", ConditionStatus.TRUE, "ProbeSucceeded", f"{len(report.cards)} accelerators found", now),
    )
    conditions = set_condition(conditions, _health_condition(report, tainted, now))
    bench_errors: list[str] = []
    if measurement is not None:
        if measurement.ok:
            bench = _condition("Benchmarked", ConditionStatus.TRUE, "Measured", measurement.summary(), now)
        else:
            bench = _condition("Benchmarked", ConditionStatus.FALSE, "BenchFailed", measurement.summary(), now)
            bench_errors.append(f"bench {measurement.backend}: {measurement.error}")
        conditions = set_condition(conditions, bench)
    elif not any(c.type == "Benchmarked" for c in conditions):
        conditions = set_condition(
            conditions, _condition("Benchmarked", ConditionStatus.UNKNOWN, "NotMeasured", bench_note, now)
        )
    return AcceleratorNodeStatus(
        vendor=report.vendor,
        model=report.model,
        devices=devices,
        total_devices=len(devices),
        healthy_devices=sum(d.health == DeviceHealth.HEALTHY for d in devices),
        probe_version=report.probe_version,
        last_probe_time=now,
        errors=_errors(bench_errors, report.errors),
        conditions=conditions,
    )


def probe_failed_status(error: str, previous: AcceleratorNodeStatus | None, now: datetime) -> AcceleratorNodeStatus:
    """The status after a probe that could not look at the node: last good facts kept, failure said."""
    base = previous or AcceleratorNodeStatus()
    conditions = set_condition(
        list(base.conditions), _condition("Probed", ConditionStatus.FALSE, "ProbeFailed", error, now)
    )
    conditions = set_condition(
        conditions,
        _condition("Healthy", ConditionStatus.UNKNOWN, "ProbeFailed", "the last probe failed; see Probed", now),
    )
    return base.model_copy(update={"errors": _errors([f"probe: {error}"]), "conditions": conditions})


def status_patch(status: AcceleratorNodeStatus) -> dict[str, Any]:
    """A merge patch that replaces the whole status: fields now unset are sent as null to clear them."""
    wire = status.to_wire()
    return {"status": {f.alias or name: wire.get(f.alias or name) for name, f in type(status).model_fields.items()}}


def validated(node_name: str, obj: Mapping[str, Any], status: AcceleratorNodeStatus) -> AcceleratorNode:
    """The full object as it will be stored, validated by the API models (SpecError names a bad field)."""
    return parse_node({**obj, "spec": {"nodeName": node_name}, "status": status.to_wire()})
