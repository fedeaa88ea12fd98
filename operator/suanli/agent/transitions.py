"""Health transitions between the last published status and a new report, as Node Events to emit.

The previous state is read back from the AcceleratorNode, not kept in memory, so a restarted agent
(or a ``--once`` run) neither repeats nor misses a transition. Cards are matched by bus id, which,
unlike the runtime index, survives a card vanishing. One event per kind of change and run, listing
the cards, so a node losing eight cards at once writes one Warning, not eight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from suanli.api import AcceleratorNodeStatus, DeviceHealth

from .labels import TAINT_EFFECT, TAINT_KEY
from .report import Card, NodeReport


@dataclass(frozen=True)
class Transition:
    """One Event to record on the Node."""

    reason: str
    """AcceleratorUnhealthy, AcceleratorDataCorruption, AcceleratorDegraded, AcceleratorRecovered,
    AcceleratorHealthUnknown or AcceleratorMissing."""
    type: str
    """``Warning`` or ``Normal``, as Kubernetes Events are typed."""
    message: str


def _describe(cards: Sequence[Card], with_detail: bool, total: int) -> str:
    details = {c.detail for c in cards}
    if with_detail and any(c.reason and c.reason != "DriverReported" for c in cards):
        # Gate verdicts: each card's reason and numbers differ, so list them.
        return "; ".join(f"card {c.index} ({c.bus_id}): {c.reason}: {c.detail}" for c in cards)
    if len(cards) == total > 1 and (not with_detail or len(details) == 1):
        # One failure took every card (a driver crash): say it once, not eight times.
        detail = next(iter(details))
        return f"all {total} cards" + (f": {detail}" if with_detail and detail else "")
    return "; ".join(
        f"card {c.index} ({c.bus_id})" + (f": {c.detail}" if with_detail and c.detail else "") for c in cards
    )


def health_transitions(
    previous: AcceleratorNodeStatus | None, report: NodeReport, tainted: bool, untainted: bool
) -> list[Transition]:
    """What changed since ``previous``: cards turning Unhealthy or Unknown, recovering, or vanishing.

    A card seen for the first time is a transition only when it is not Healthy; Unknown -> Healthy is
    one (AcceleratorRecovered closes the AcceleratorHealthUnknown Warning). ``tainted`` and
    ``untainted`` say whether this run adds or removes the node's taint, which the messages mention.
    """
    before = {d.bus_id: d.health for d in previous.devices if d.bus_id} if previous else {}
    summary = f"{report.usable} of {report.count} cards usable"
    broke, corrupt, slowed, recovered, unknown = [], [], [], [], []
    for card in report.cards:
        old = before.get(card.bus_id)
        if card.health == old:
            continue
        if card.health == DeviceHealth.UNHEALTHY and card.reason == "DataCorruption":
            corrupt.append(card)
        elif card.health == DeviceHealth.UNHEALTHY:
            broke.append(card)
        elif card.health == DeviceHealth.DEGRADED:
            slowed.append(card)
        elif card.health == DeviceHealth.HEALTHY and old is not None:
            recovered.append(card)
        elif card.health == DeviceHealth.UNKNOWN:
            unknown.append(card)
    seen = {c.bus_id for c in report.cards}
    missing = sorted(bus for bus in before if bus not in seen)

    taint_note = f"; tainted the node {TAINT_KEY}=true:{TAINT_EFFECT}" if tainted else ""
    out: list[Transition] = []
    if corrupt:
        message = (f"failed verification (silent data corruption), taken out of service: "
                   f"{_describe(corrupt, True, len(report.cards))}; {summary}")
        out.append(Transition("AcceleratorDataCorruption", "Warning", message + taint_note))
    if broke:
        message = f"unhealthy: {_describe(broke, True, len(report.cards))}; {summary}"
        out.append(Transition("AcceleratorUnhealthy", "Warning", message + ("" if corrupt else taint_note)))
    if slowed:
        placed = "still placed (--place-degraded)" if report.place_degraded else "no longer placed"
        message = f"degraded, {placed}: {_describe(slowed, True, len(report.cards))}; {summary}"
        out.append(Transition("AcceleratorDegraded", "Warning",
                              message + ("" if corrupt or broke else taint_note)))
    if missing:
        out.append(Transition("AcceleratorMissing", "Warning",
                              f"no longer found on the PCI bus: {', '.join(missing)}; {summary}"))
    if unknown:
        why = "; ".join(report.health_unknown_because)
        out.append(Transition("AcceleratorHealthUnknown", "Warning",
                              f"health unknown (counted as usable): {_describe(unknown, not why, len(report.cards))}"
                              + (f"; {why}" if why else "")))
    if recovered:
        message = f"healthy again: {_describe(recovered, False, len(report.cards))}; {summary}"
        if untainted:
            message += f"; removed the node's {TAINT_KEY} taint"
        out.append(Transition("AcceleratorRecovered", "Normal", message))
    elif untainted:
        out.append(Transition("AcceleratorRecovered", "Normal", f"removed the node's {TAINT_KEY} taint; {summary}"))
    if tainted and not (broke or corrupt or slowed):
        out.append(Transition("AcceleratorUnhealthy", "Warning",
                              f"tainted the node {TAINT_KEY}=true:{TAINT_EFFECT}; {summary}"))
    return out
