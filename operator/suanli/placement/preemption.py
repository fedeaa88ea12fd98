"""Gang preemption: which lower-priority gangs to restart so a higher-priority gang fits.

Only whole gangs are victims (a gang that loses one replica is lost anyway), only Suanli's own (other
schedulers' pods are never touched), and only gangs of strictly lower priority. Among those the choice is:
lowest priority first, then the most recently started (least work lost); take victims in that order until
the gang fits, then give back every victim the gang can do without, most valuable first. Each step is a
real plan on the inventory with the victims' pods taken out (``Inventory.without_pods``), so vendor rules,
topology limits and candidate order are honoured exactly as in normal planning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from suanli.inventory import Inventory
from suanli.inventory.pods import PodKey
from suanli.placement.planner import plan
from suanli.placement.request import GangRequest, Placement

MAX_VICTIMS_CONSIDERED = 256
"""Upper bound on the gangs tried, so one pass stays bounded in a cluster running thousands of jobs."""


@dataclass(frozen=True)
class RunningGang:
    """A placed gang that could be preempted."""

    key: str
    """``namespace/name``."""
    priority: int
    started: str
    """RFC 3339 time the gang started (sorts as text); later = less work lost by restarting it."""
    pods: tuple[PodKey, ...]
    cards: int
    """Accelerators its pods hold, for a cheap does-it-add-up test before planning."""
    nodes: tuple[str, ...] = ()
    """Nodes it runs on (held for the preempting job until it lands)."""


def choose_victims(
    inventory: Inventory, request: GangRequest, priority: int, running: Iterable[RunningGang]
) -> tuple[RunningGang, ...] | None:
    """The gangs to restart so that ``request`` fits, or None when preempting cannot make it fit."""
    eligible = sorted(
        (g for g in running if g.priority < priority),
        key=lambda g: (g.priority, _newest_first(g.started), g.key),
    )[:MAX_VICTIMS_CONSIDERED]
    if not eligible:
        return None
    needed = request.min_replicas * request.accelerators_per_replica
    free = sum(
        state.free_cards
        for c in request.candidates
        for vendor, model in inventory.pools()
        if vendor == c.vendor
        for state in inventory.available(vendor, model).values()
    )
    chosen: list[RunningGang] = []
    for gang in eligible:
        chosen.append(gang)
        free += gang.cards
        if free >= needed and _fits(inventory, request, chosen):
            break
    else:
        return None
    # Give back victims not needed, the most valuable (highest priority, longest running) first.
    for gang in sorted(chosen, key=lambda g: (-g.priority, g.started, g.key)):
        rest = [g for g in chosen if g is not gang]
        if rest and _fits(inventory, request, rest):
            chosen = rest
    return tuple(chosen)


def _fits(inventory: Inventory, request: GangRequest, victims: Sequence[RunningGang]) -> bool:
    with inventory.without_pods(key for gang in victims for key in gang.pods):
        return isinstance(plan(inventory, request), Placement)


def _newest_first(started: str) -> tuple[int, ...]:
    """Sort key putting later RFC 3339 times first (they compare as text)."""
    return tuple(-ord(ch) for ch in started)
