"""The node labels and taint the agent owns, computed from a report (contract: docs/labels.md).

Only ``suanli.io/accelerator.*`` keys and the ``suanli.io/unhealthy`` taint are ever written or
removed; every other label and taint on the node belongs to someone else and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from suanli.inventory import labels as L

from .report import NodeReport
from .throughput import Measurement

OWNED_LABELS: tuple[str, ...] = (
    L.VENDOR,
    L.MODEL,
    L.COUNT,
    L.MEMORY_MIB,
    L.HEALTHY,
    L.LINK_DOMAINS,
    L.MEMBW_GBS,
    L.FMA_TFLOPS,
)
"""Every node label the agent may write or remove. ``suanli.io/rack`` is the administrator's, not ours."""

TAINT_KEY = "suanli.io/unhealthy"
TAINT_EFFECT = "NoSchedule"
TAINT: dict[str, str] = {"key": TAINT_KEY, "value": "true", "effect": TAINT_EFFECT}
"""Put on a node none of whose cards is usable, so nothing new lands there; NoSchedule, not NoExecute:
evicting running pods is the operator's decision (it restarts gangs), not the agent's."""

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_label_value(value: str) -> bool:
    """Kubernetes label-value syntax: at most 63 characters, alphanumeric at both ends, ``-_.`` inside."""
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None


def format_link_domains(sizes: Sequence[int]) -> str | None:
    """``2x4`` for equal domains, sizes joined by ``_`` (``7_1``) for uneven ones; None for none.

    ``_`` because a label value cannot hold ``+``: the API server would refuse the whole patch.
    """
    if not sizes:
        return None
    if len(set(sizes)) == 1:
        return f"{len(sizes)}x{sizes[0]}"
    return "_".join(str(size) for size in sizes)


def _number(value: float) -> str:
    # One decimal is far below run-to-run noise; fewer digits mean fewer node updates for watchers.
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def desired_labels(report: NodeReport, measurement: Measurement | None) -> dict[str, str | None]:
    """Our labels as they should be: a value to set, or None to remove.

    Facts the probe could not read (memory, link domains without a management library) are removed
    so the inventory falls back to the model's datasheet values instead of trusting stale ones.
    Throughput keys appear only when a card measurement verified in this run (left alone otherwise:
    not measured is not the same as measured nothing). A node without accelerators loses every key.
    """
    if report.vendor is None:
        return dict.fromkeys(OWNED_LABELS)
    out: dict[str, str | None] = {
        L.VENDOR: report.vendor.value,
        L.MODEL: report.model,
        L.COUNT: str(report.count),
        L.MEMORY_MIB: str(report.memory_mib) if report.memory_mib is not None else None,
        L.HEALTHY: str(report.usable),
        L.LINK_DOMAINS: format_link_domains(report.link_domains) if report.link_domains else None,
    }
    if measurement is not None and measurement.ok and measurement.for_cards:
        if measurement.copy_gbs is not None:
            out[L.MEMBW_GBS] = str(round(measurement.copy_gbs))
        if measurement.fma_tflops is not None:
            out[L.FMA_TFLOPS] = _number(measurement.fma_tflops)
    bad = {k: v for k, v in out.items() if v is not None and not is_label_value(v)}
    if bad:
        raise ValueError(f"agent computed invalid label values {bad}: a bug, please report it")
    return out


def label_patch(current: Mapping[str, str], desired: Mapping[str, str | None]) -> dict[str, str | None]:
    """The merge-patch ``metadata.labels`` that turns ``current`` into ``desired``; empty when equal."""
    return {
        key: value
        for key, value in desired.items()
        if (value is None and key in current) or (value is not None and current.get(key) != value)
    }


def wants_taint(report: NodeReport) -> bool:
    """Taint when the node has cards and none is usable; a node with some usable cards stays open."""
    return report.count > 0 and report.usable == 0


def taint_update(taints: Sequence[Mapping[str, Any]], wanted: bool) -> list[dict[str, Any]] | None:
    """The node's new ``spec.taints`` with ours added or removed; None when nothing changes."""
    ours = [t for t in taints if t.get("key") == TAINT_KEY]
    others = [dict(t) for t in taints if t.get("key") != TAINT_KEY]
    if wanted:
        if len(ours) == 1 and {k: ours[0].get(k) for k in TAINT} == TAINT:
            return None
        return [*others, dict(TAINT)]
    return others if ours else None
