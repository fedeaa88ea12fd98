"""What a bound pod takes from its node: cards per resource, CPU, memory and (if we placed it) link domains.

Requests follow the kubelet's rule: regular containers (plus restartable "sidecar" init containers) add
up; a classic init container runs alone, so the pod needs the larger of the two; ``spec.overhead`` is added
on top.  A limit without a request counts as the request, as the API server defaults it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from suanli.inventory.labels import LINK_DOMAIN_ANNOTATION
from suanli.inventory.models import is_card_resource
from suanli.inventory.quantity import QuantityError, bytes_of, cpu_millis

_TERMINAL = frozenset({"Succeeded", "Failed"})

PodKey = tuple[str, str]
"""(namespace, name)."""


@dataclass(frozen=True, slots=True)
class PodUsage:
    """The share of a node one non-terminal bound pod holds."""

    key: PodKey
    node: str
    cards: Mapping[str, int]
    """Whole-card resources requested, by resource name (any vendor's)."""
    cpu_millis: int
    memory_bytes: int
    link_domains: tuple[int, ...] | None
    """Domain indices from the ``suanli.io/link-domain`` annotation; None when absent or unreadable."""


def pod_key(pod: Mapping[str, Any]) -> PodKey:
    meta = pod.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError("pod has no metadata.name: pass the Pod object as the API returns it")
    return (str(meta.get("namespace") or "default"), str(name))


def pod_usage(pod: Mapping[str, Any]) -> PodUsage | None:
    """The usage of ``pod``, or None when it holds nothing (not bound yet, or finished)."""
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in _TERMINAL:
        return None
    totals = _requests(spec)
    cards = {name: int(amount) for name, amount in totals.items() if amount > 0 and is_card_resource(name)}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return PodUsage(
        key=pod_key(pod),
        node=str(node),
        cards=cards,
        cpu_millis=int(totals.get("cpu", 0)),
        memory_bytes=int(totals.get("memory", 0)),
        link_domains=parse_link_domains(annotations.get(LINK_DOMAIN_ANNOTATION)),
    )


def parse_link_domains(raw: object) -> tuple[int, ...] | None:
    """``"0+1"`` -> ``(0, 1)``; anything unreadable -> None (the pod is then attributed by best fit)."""
    if not isinstance(raw, str) or not raw:
        return None
    parts = raw.split("+")
    if not all(p.strip().isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def format_link_domains(domains: tuple[int, ...]) -> str:
    """The annotation value for ``domains`` (the inverse of :func:`parse_link_domains`)."""
    return "+".join(str(d) for d in domains)


def _container_requests(container: Mapping[str, Any]) -> dict[str, float]:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    out: dict[str, float] = {}
    for name, value in merged.items():
        try:
            # CPU in millicores, everything else in base units; the API server already validated these,
            # so a parse failure means a resource we do not understand and we leave it out.
            out[name] = cpu_millis(value) if name == "cpu" else bytes_of(value)
        except QuantityError:
            continue
    return out


def _add(into: dict[str, float], more: Mapping[str, float]) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, 0) + amount


def _requests(spec: Mapping[str, Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for container in spec.get("containers") or ():
        _add(total, _container_requests(container))
    init_peak: dict[str, float] = {}
    sidecars: dict[str, float] = {}
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            # A sidecar keeps running alongside everything started after it.
            _add(sidecars, requests)
            continue
        for name, amount in requests.items():
            init_peak[name] = max(init_peak.get(name, 0), amount + sidecars.get(name, 0))
    _add(total, sidecars)
    for name, amount in init_peak.items():
        total[name] = max(total.get(name, 0), amount)
    for name, value in (spec.get("overhead") or {}).items():
        _add(total, _container_requests({"resources": {"requests": {name: value}}}))
    return total
