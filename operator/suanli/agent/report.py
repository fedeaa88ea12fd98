"""One probe of the node, reduced to the facts the agent publishes: cards, their health, their links.

The health rule lives here, in one place (``card_health``): only a card the vendor's management
library positively reports as failed or degraded is Unhealthy. A card whose health could not be read
(library missing, failing to load or to initialise, driver not seeing it) is Unknown, and Unknown
cards still count as usable. A broken agent image or a bad DaemonSet rollout fails on every node at
once; if that lowered health it would drain the whole cluster, so it only raises a Warning.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from suanli.api import DeviceHealth, Vendor
from suanli.inventory import canonical_model
from suanli.probe import PciDevice, ProbeReport

MAX_CARDS = 64
"""Devices the AcceleratorNode can list (its ``devices`` maxItems); more are reported as an error."""

_PROBE_HEALTH = {
    "ok": DeviceHealth.HEALTHY,
    "degraded": DeviceHealth.UNHEALTHY,
    "failed": DeviceHealth.UNHEALTHY,
    "unknown": DeviceHealth.UNKNOWN,
}
_MODEL_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def card_health(device: PciDevice) -> DeviceHealth:
    """Healthy, Unhealthy or Unknown: the probe's verdict, never a guess from a library failure.

    "degraded" (uncorrectable ECC since boot, a minor DCMI alarm) counts as Unhealthy: such a card loses
    pages or raises faults under load, and a gang placed on it restarts sooner or later.
    """
    return _PROBE_HEALTH.get(device.health, DeviceHealth.UNKNOWN)


@dataclass(frozen=True)
class Card:
    """One accelerator as the agent publishes it."""

    index: int
    """Position in PCI bus order among the node's cards (nvidia-smi, npu-smi and hy-smi number by
    bus order by default)."""
    bus_id: str
    vendor: Vendor
    model: str
    """Canonical model (H100, Ascend910B, DCU-K100-AI) when recognised, else the probe's name made
    label-safe, else ``unknown``."""
    canonical: bool
    """Whether ``model`` is a canonical name the inventory understands."""
    memory_mib: int | None
    health: DeviceHealth
    detail: str | None
    """Why the card is not Healthy (the driver's or the health gate's words), or None."""
    numa_node: int
    link_domain: str | None
    """``<type>-<n>`` (``nvlink-0``) for cards in a link domain the management library reported."""
    pci_id: str | None = None
    """``vendor:device`` PCI id (``10de:2330``): picks the board's entry in the golden table."""
    memory_used_mib: int | None = None
    """Memory in use when probed (management library); a card holding a job's memory is busy."""
    reason: str | None = None
    """CamelCase reason when not Healthy: ``DriverReported``, or the health gate's (gate.Reason)."""


@dataclass(frozen=True)
class NodeReport:
    """What one successful probe says about the node; labels, taint and status are derived from it."""

    cards: tuple[Card, ...]
    """Every accelerator found, of every vendor, in bus order."""
    vendor: Vendor | None
    """The node's vendor: the one with most cards (a node carries one vendor's cards)."""
    model: str | None
    """Canonical model of most of the vendor's cards; None when none is recognised."""
    memory_mib: int | None
    """Smallest memory of the vendor's cards (a gang is bound by its smallest card), None if unknown."""
    link_domains: tuple[int, ...] | None
    """Sizes of the vendor's in-node link domains, largest first; None when the management library
    could not tell (the inventory then falls back to the model's default layout)."""
    links_known: bool
    probe_version: str | None
    versions: dict[str, str]
    """Non-null versions the probe read: suanli, nvidia_driver, ascend_driver, hygon_driver."""
    health_unknown_because: tuple[str, ...]
    """Why some cards' health is Unknown (a management library's status and message)."""
    errors: tuple[str, ...]
    place_degraded: bool = False
    """Whether Degraded cards count as usable (the agent's --place-degraded)."""

    @property
    def vendor_cards(self) -> tuple[Card, ...]:
        return tuple(c for c in self.cards if c.vendor == self.vendor)

    @property
    def count(self) -> int:
        return len(self.vendor_cards)

    @property
    def unhealthy(self) -> int:
        return sum(c.health == DeviceHealth.UNHEALTHY for c in self.vendor_cards)

    @property
    def degraded(self) -> int:
        return sum(c.health == DeviceHealth.DEGRADED for c in self.vendor_cards)

    @property
    def usable(self) -> int:
        """Cards not known to be broken: Healthy and Unknown ones (see the module docstring), and
        Degraded ones only when the administrator lets them be placed."""
        return self.count - self.unhealthy - (0 if self.place_degraded else self.degraded)


class ProbeFailedError(RuntimeError):
    """The probe could not look at the node at all; nothing it returned may be published as fact."""


def build_report(probe: ProbeReport) -> NodeReport:
    """Reduce a probe report to publishable facts; ProbeFailedError when it saw nothing it can vouch for.

    A probe that found no device but hit errors (an unreadable sysfs root) is a failure, not a CPU
    node: only a clean probe may remove a node's accelerator labels.
    """
    if not probe.devices and probe.errors:
        raise ProbeFailedError("; ".join(probe.errors))
    errors = list(probe.errors)
    devices = sorted(probe.devices, key=lambda d: d.bdf)
    if len(devices) > MAX_CARDS:
        errors.append(f"{len(devices)} accelerators found; only the first {MAX_CARDS} (bus order) are listed")
        devices = devices[:MAX_CARDS]

    domain_of: dict[str, str] = {}
    per_type: Counter[str] = Counter()
    for domain in probe.topology.link_domains:
        name = f"{domain.type}-{per_type[domain.type]}"
        per_type[domain.type] += 1
        for bdf in domain.devices:
            domain_of[bdf] = name

    cards = tuple(_card(i, d, domain_of.get(d.bdf)) for i, d in enumerate(devices))
    by_vendor = Counter(c.vendor for c in cards)
    vendor = min(by_vendor, key=lambda v: (-by_vendor[v], v.value)) if by_vendor else None
    if len(by_vendor) > 1:
        found = ", ".join(f"{n} {v.value}" for v, n in sorted(by_vendor.items()))
        errors.append(f"cards of several vendors ({found}); labels describe the {vendor} cards only")
    mine = [c for c in cards if c.vendor == vendor]

    models = Counter(c.model for c in mine if c.canonical)
    model = min(models, key=lambda m: (-models[m], m)) if models else None
    if len(models) > 1:
        errors.append(f"mixed models ({', '.join(sorted(models))}); labels name the most common, {model}")
    memories = [c.memory_mib for c in mine if c.memory_mib is not None]

    library = next((m for m in probe.management if vendor is not None and m.vendor == vendor.value), None)
    links_known = library is not None and library.status == "ok"
    link_domains: tuple[int, ...] | None = None
    if links_known and mine:
        sizes = Counter(c.link_domain or f"alone-{c.bus_id}" for c in mine)
        link_domains = tuple(sorted(sizes.values(), reverse=True))

    unknown_because = tuple(
        f"{m.library} {m.status}" + (f": {m.detail}" if m.detail else "")
        for m in probe.management
        if m.status in ("missing", "error")
    )
    for c in cards:
        if c.health != DeviceHealth.HEALTHY and c.detail and not (
            c.health == DeviceHealth.UNKNOWN and unknown_because
        ):
            errors.append(f"{c.bus_id}: {c.detail}")
    errors.extend(unknown_because)

    return NodeReport(
        cards=cards,
        vendor=vendor,
        model=model,
        memory_mib=min(memories) if memories else None,
        link_domains=link_domains,
        links_known=links_known,
        probe_version=probe.versions.get("suanli"),
        versions={k: v for k, v in sorted(probe.versions.items()) if v},
        health_unknown_because=unknown_because,
        errors=tuple(errors),
    )


def _card(index: int, d: PciDevice, link_domain: str | None) -> Card:
    vendor = Vendor(d.vendor)
    canonical = canonical_model(d.vendor, d.model) or (
        canonical_model(d.vendor, d.management_name) if d.management_name else None
    )
    # Not a model we know (an unverified id): keep the driver's or the table's name, made label-safe.
    raw = _MODEL_NAME.sub("-", d.management_name or d.model).strip("-._")[:63].strip("-._")
    health = card_health(d)
    return Card(
        index=index,
        bus_id=d.bdf,
        vendor=vendor,
        model=canonical or raw or "unknown",
        canonical=canonical is not None,
        memory_mib=d.memory_total_bytes >> 20 if d.memory_total_bytes is not None else None,
        health=health,
        detail=d.status_detail if health != DeviceHealth.HEALTHY or d.status == "error" else None,
        numa_node=d.numa_node,
        link_domain=link_domain,
        pci_id=f"{d.vendor_id.removeprefix('0x')}:{d.device_id.removeprefix('0x')}".lower(),
        memory_used_mib=d.memory_used_bytes >> 20 if d.memory_used_bytes is not None else None,
        reason="DriverReported" if health == DeviceHealth.UNHEALTHY else None,
    )
