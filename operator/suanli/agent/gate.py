"""The health gate: what a bench says about each card's health (DCGM-style rules, docs/agent.md).

- A verification mismatch (a result that differs from its exact expected value) is silent data
  corruption, the failure that matters most in training: the card is Unhealthy at once, reason
  ``DataCorruption``. It stays so until an on-demand re-test passes (a scheduled pass is not enough
  to trust a card that once computed wrong).
- A verified card below ``golden_fraction`` of its model's golden figure (DCGM's 0.75 rule), or below
  ``median_fraction`` of its node's median, is ``Degraded``: it works, but a gang runs at its slowest
  member's pace, so it is not placed unless the administrator says so.
- A bench that crashed or hung on a card makes it ``Degraded`` (``BenchCrashed``/``BenchTimedOut``).
- A bench that could not run (allocation failed, runtime missing) or was skipped says nothing.

Only cards that were idle when measured are judged on speed: a card busy with a job is slow for a
good reason. Corruption is judged whenever a bench ran on the card.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from suanli.api import AcceleratorNodeStatus, DeviceHealth

from .golden import Figure, GoldenTable
from .report import Card, NodeReport
from .throughput import DeviceResult, Measurement, Outcome


class Reason(StrEnum):
    """Why a card is not Healthy (``Device.healthReason``)."""

    DATA_CORRUPTION = "DataCorruption"
    BELOW_GOLDEN = "BelowGolden"
    BELOW_NODE_MEDIAN = "BelowNodeMedian"
    BENCH_CRASHED = "BenchCrashed"
    BENCH_TIMED_OUT = "BenchTimedOut"
    DRIVER_REPORTED = "DriverReported"
    """The vendor's management library reported the card failed or degraded (report.card_health)."""


GATE_REASONS = frozenset({Reason.DATA_CORRUPTION, Reason.BELOW_GOLDEN, Reason.BELOW_NODE_MEDIAN,
                          Reason.BENCH_CRASHED, Reason.BENCH_TIMED_OUT})
"""Reasons the gate gives (as opposed to the driver's): read back from the AcceleratorNode after a restart."""


@dataclass(frozen=True)
class GatePolicy:
    """The gate's thresholds; every field has an agent flag."""

    golden_fraction: float = 0.75
    """Degraded below this fraction of the golden figure: DCGM's memory-bandwidth rule (its minimum is
    0.75 x a known-good measurement, nvvs/diag-skus.yaml.in)."""
    median_fraction: float = 0.8
    """Degraded below this fraction of the node's median: a card 20% slower than its seven siblings
    holds back every gang on the node even when the golden figure is unknown or generous."""
    min_cards_for_median: int = 3
    """The median rule needs this many verified cards (with two, which one is slow?)."""
    place_degraded: bool = False
    """Count Degraded cards as usable (placement continues on them; the status still shows them)."""

    def __post_init__(self) -> None:
        if not 0 < self.golden_fraction <= 1:
            raise ValueError(f"--golden-fraction={self.golden_fraction} must be in (0, 1]")
        if not 0 < self.median_fraction <= 1:
            raise ValueError(f"--median-fraction={self.median_fraction} must be in (0, 1]")


@dataclass(frozen=True)
class Verdict:
    """The gate's word on one card after a bench: Healthy (passed), Degraded or Unhealthy."""

    health: DeviceHealth
    reason: Reason | None
    message: str

    @property
    def sticky(self) -> bool:
        """Only an on-demand re-test clears it."""
        return self.reason == Reason.DATA_CORRUPTION


PASSED = "passed the bench"


def _figure_check(
    name: str, unit: str, value: float | None, expected: Figure | None, where: str, fraction: float
) -> str | None:
    if value is None or expected is None or expected.value is None:
        return None
    floor = fraction * expected.value
    if value >= floor:
        return None
    return (f"{name} {value:.4g} {unit} < {fraction:g} x golden {expected.value:g} {unit} "
            f"({where}, source {expected.source.value})")


def _median_check(name: str, unit: str, value: float | None, values: Sequence[float], policy: GatePolicy) -> str | None:
    if value is None or len(values) < policy.min_cards_for_median:
        return None
    median = statistics.median(values)
    if value >= policy.median_fraction * median:
        return None
    return f"{name} {value:.4g} {unit} < {policy.median_fraction:g} x node median {median:.4g} {unit}"


def judge(
    cards: Sequence[Card],
    measurement: Measurement,
    golden: GoldenTable,
    policy: GatePolicy,
    busy: frozenset[str] = frozenset(),
) -> tuple[dict[str, Verdict], list[str]]:
    """Verdicts by bus id for the cards the bench covered, and notes for what could not be judged.

    ``cards`` are the node's vendor cards in bus order; device i of the bench is card i only when
    the runtime listed exactly as many devices (else nothing is attributed). ``busy``: bus ids of
    cards that held a job's memory when measured (judged on corruption only).
    """
    if not measurement.for_cards or not measurement.devices:
        return {}, []
    if measurement.devices_seen != len(cards):
        bad = [d for d in measurement.devices if d.outcome != Outcome.OK]
        note = (f"bench {measurement.backend}: the runtime lists {measurement.devices_seen} devices, the probe "
                f"found {len(cards)} cards; results cannot be matched to cards, so no card is judged")
        if any(d.outcome == Outcome.CORRUPT for d in bad):
            note += " (a device FAILED VERIFICATION: check the node by hand)"
        return {}, [note]
    by_index: Mapping[int, DeviceResult] = {d.index: d for d in measurement.devices}
    idle_ok = [
        (card, by_index[i]) for i, card in enumerate(cards)
        if i in by_index and by_index[i].outcome == Outcome.OK and card.bus_id not in busy
    ]
    copies = [d.copy_gbs for _, d in idle_ok if d.copy_gbs is not None]
    fmas = [d.fma_tflops for _, d in idle_ok if d.fma_tflops is not None]
    copy_name = "DMA copy" if measurement.copy_method == "dma" else "copy"

    verdicts: dict[str, Verdict] = {}
    for i, card in enumerate(cards):
        result = by_index.get(i)
        if result is None:
            continue
        if result.outcome == Outcome.CORRUPT:
            verdicts[card.bus_id] = Verdict(DeviceHealth.UNHEALTHY, Reason.DATA_CORRUPTION,
                                            f"verification failed: {result.detail or 'wrong results'}")
        elif result.outcome == Outcome.CRASHED:
            verdicts[card.bus_id] = Verdict(DeviceHealth.DEGRADED, Reason.BENCH_CRASHED, result.detail or "crashed")
        elif result.outcome == Outcome.TIMED_OUT:
            verdicts[card.bus_id] = Verdict(DeviceHealth.DEGRADED, Reason.BENCH_TIMED_OUT, result.detail or "hung")
        elif result.outcome == Outcome.OK and card.bus_id not in busy:
            expected = golden.expected(card.model, card.pci_id, measurement.copy_method)
            where = expected.entry if expected else ""
            below = [m for m in (
                _figure_check(copy_name, "GB/s", result.copy_gbs, expected.copy_gbps if expected else None,
                              where, policy.golden_fraction),
                _figure_check("FMA", "TFLOP/s", result.fma_tflops, expected.fma_tflops if expected else None,
                              where, policy.golden_fraction),
            ) if m]
            if below:
                verdicts[card.bus_id] = Verdict(DeviceHealth.DEGRADED, Reason.BELOW_GOLDEN, "; ".join(below))
                continue
            slow = [m for m in (
                _median_check(copy_name, "GB/s", result.copy_gbs, copies, policy),
                _median_check("FMA", "TFLOP/s", result.fma_tflops, fmas, policy),
            ) if m]
            if slow:
                verdicts[card.bus_id] = Verdict(DeviceHealth.DEGRADED, Reason.BELOW_NODE_MEDIAN, "; ".join(slow))
            else:
                verdicts[card.bus_id] = Verdict(DeviceHealth.HEALTHY, None, PASSED)
        elif result.outcome == Outcome.OK:
            verdicts[card.bus_id] = Verdict(DeviceHealth.HEALTHY, None, PASSED + " (busy: speed not judged)")
    return verdicts, []


def merge_verdicts(
    old: Mapping[str, Verdict], new: Mapping[str, Verdict], on_demand: bool
) -> dict[str, Verdict]:
    """The verdicts after a bench: new ones replace old ones, except that a scheduled pass never
    clears DataCorruption (only an on-demand re-test does). Cards the bench did not cover keep theirs."""
    out = dict(old)
    for bus, verdict in new.items():
        previous = old.get(bus)
        if previous is not None and previous.sticky and not on_demand and not verdict.sticky:
            continue
        out[bus] = verdict
    return out


def apply_verdicts(report: NodeReport, verdicts: Mapping[str, Verdict], policy: GatePolicy) -> NodeReport:
    """The report with the gate's verdicts on its cards. The driver's own Unhealthy stands whatever
    the bench said (it is the stronger evidence); otherwise a Degraded or Unhealthy verdict wins."""
    cards = []
    for card in report.cards:
        verdict = verdicts.get(card.bus_id)
        if verdict is None or verdict.health == DeviceHealth.HEALTHY or card.health == DeviceHealth.UNHEALTHY:
            cards.append(card)
            continue
        cards.append(replace(card, health=verdict.health, detail=verdict.message,
                             reason=verdict.reason.value if verdict.reason else None))
    return replace(report, cards=tuple(cards), place_degraded=policy.place_degraded)


def verdicts_from_status(status: AcceleratorNodeStatus | None) -> dict[str, Verdict]:
    """The gate's verdicts as the last agent published them, so a restarted agent keeps a card that
    failed verification out until an on-demand re-test passes."""
    if status is None:
        return {}
    out: dict[str, Verdict] = {}
    for d in status.devices:
        if d.bus_id and d.health_reason in GATE_REASONS:
            out[d.bus_id] = Verdict(d.health, Reason(d.health_reason), f"{d.health_reason} (from the last agent run)")
    return out
