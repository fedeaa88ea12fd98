"""Gang + topology planner: place ``min_replicas``..``replicas`` replicas all at once, or explain why not.

How it stays fast at 10,000 nodes: the inventory indexes nodes by (vendor, model) pool, so a candidate
reads only its pool; each node is reduced to *how many replicas fit on it* (a cached function of its free
link-domain shape, capped by free CPU/memory); nodes are summed per rack, racks per zone, zones per region;
then domains are searched narrow to wide and a level is only searched if one of its domains can hold the
gang.  No step enumerates nodes combinatorially.

Objective, compared lexicographically (smaller is better):

1. more replicas (the full count if any domain allowed by ``required_level`` holds it, else as many as
   fit, never fewer than ``min_replicas``);
2. the narrowest enclosing level: one node, one rack, one zone, one region, the cluster;
3. inside it, fewest racks, then fewest zones, then fewest regions, then fewest nodes;
4. best fit: least replica room left in the racks used (whole racks stay whole for the next gang);
5. stable names, so the same inventory and request give the same answer.

Racks are chosen by greedy-largest-first with a best-fit last pick, which is exact for the rack count.
Nodes are then chosen from all the chosen racks together, largest replica room first (never rack by rack:
splitting the replicas over racks before choosing nodes can use one node more than needed), and among
nodes of equal room the one that leaves fewer of its free cards stranded.  That is exact for the node
count of the chosen racks; which racks to choose among rack-minimal sets is compared exactly when there
are at most :data:`EXACT_RACK_SETS` such sets and the greedy one may use more nodes than a lower bound
(all the domain's nodes, racks ignored); above that, racks of equal room go to the one with fewer nodes.
The zone count among rack-minimal choices is found exactly by enumerating zone sets when the enclosing
domain has at most :data:`EXACT_ZONE_SEARCH` zones (the :data:`EXACT_ZONE_SETS` best-fitting sets tied on
zones and regions are then compared for nodes), and greedily (largest first, then dropping zones not
needed) above that.  The property tests check racks, zones, regions and nodes against brute force.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, combinations
from math import comb
from operator import attrgetter
from typing import TypeVar

from suanli.inventory import Inventory, NodeState, family_of
from suanli.inventory.models import model_matches
from suanli.inventory.node import describe_taint
from suanli.placement.request import Candidate, GangRequest, Placement, ReplicaPlacement, Unplaceable
from suanli.placement.rules import replicas_fitting, shape_problem, take_domains
from suanli.topology import Level

EXACT_ZONE_SEARCH = 10
"""Largest number of zones whose subsets are enumerated exactly when a gang must span zones."""

EXACT_RACK_SETS = 35
"""Most rack-minimal sets of racks compared exactly for their node count (above it: the greedy set)."""

EXACT_ZONE_SETS = 4
"""Most zone sets, tied on zones and regions, compared for their node count when a gang must span zones."""

_MIB_PER_GIB = 1024
# Drivers report a card's memory less what firmware and ECC keep (an "80 GB" H100 shows 81559 MiB, 79.6 GiB):
# a user asking for 80 GiB means that card, so a request matches cards within 2 % below it.
_MEMORY_SLACK = 0.98
T = TypeVar("T")
_ROOM = attrgetter("room")
RackId = tuple[str, str, str]
ZoneId = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Slot:
    """A node that can take at least one replica of this request, and how many."""

    state: NodeState
    room: int
    strict: bool
    candidate: int


@dataclass(frozen=True, slots=True)
class _Choice:
    key: tuple[int, int, int, int, int, int, Hashable]
    picks: tuple[tuple[_Slot, int], ...]
    level: Level | None


@dataclass
class _PoolReport:
    """Per (candidate, pool) counts kept for explanations; only read on the slow path."""

    model: str
    nodes: int = 0
    unschedulable: int = 0
    avoided: int = 0
    unselected: int = 0
    untolerated: int = 0
    taints: set[str] = field(default_factory=set)
    low_memory: int = 0
    short_cpu_memory: int = 0
    shape: str | None = None


def plan(inventory: Inventory, request: GangRequest) -> Placement | Unplaceable:
    """Place ``request`` on ``inventory``'s free capacity, or say per candidate why it cannot."""
    views = [_CandidateView(inventory, request, i, c) for i, c in enumerate(request.candidates)]
    for need in dict.fromkeys((request.replicas, request.min_replicas)):
        choice = _choose(views, request, need)
        if choice is not None:
            return _placement(request, _near(inventory, views, request, need, choice))
    reasons = tuple(view.explain() for view in views)
    asked = ", ".join(c.describe() for c in request.candidates)
    where = f" within one {request.required_level.label}" if request.required_level is not None else ""
    summary = (f"{request.key}: no room for {request.min_replicas} of {_replicas(request.replicas)} x "
               f"{request.accelerators_per_replica} cards ({asked}){where}")
    mixed: tuple[str, ...] = ()
    if request.allow_mixing and len(views) > 1:
        total = sum(s.room for s in _mixed_slots(views))
        mixed = (f"combining all candidates gives room for {_replicas(total)} in the cluster, "
                 f"and fewer{where}",)
    return Unplaceable(reasons=reasons, summary=summary, mixed_reasons=mixed)


def _choose(views: Sequence[_CandidateView], request: GangRequest, need: int,
            keep: Callable[[NodeState], bool] | None = None) -> _Choice | None:
    """The first candidate (in preference order) with a choice, else a mixed one when allowed."""
    for view in views:
        choice = view.best(need, keep)
        if choice is not None:
            return choice
    if request.allow_mixing and len(views) > 1:
        return _search(_mixed_slots(views, keep), request.replicas, need, request.required_level, "mixed")
    return None


def _mixed_slots(views: Sequence[_CandidateView], keep: Callable[[NodeState], bool] | None = None) -> list[_Slot]:
    """Every candidate's nodes, each node once, as its most preferred candidate (two candidates may both
    accept a node, e.g. "H100" and "any NVIDIA": counting it twice would overfill it)."""
    seen: dict[str, _Slot] = {}
    for view in views:
        for pool in view.slots.values():
            for slot in pool:
                if slot.state.node.name not in seen and (keep is None or keep(slot.state)):
                    seen[slot.state.node.name] = slot
    return list(seen.values())


def _rank(choice: _Choice) -> tuple[int, int, int]:
    """The objective's first terms: more replicas, the preferred candidate, the narrowest level."""
    level = Level.REGION + 1 if choice.level is None else int(max(choice.level, Level.NODE))
    return (-_replica_count(choice), min(slot.candidate for slot, _ in choice.picks), level)


_DOMAIN_OF: tuple[tuple[Level, Callable[[NodeState], Hashable]], ...] = (
    (Level.NODE, lambda s: s.node.name),
    (Level.RACK, lambda s: s.node.rack_id),
    (Level.ZONE, lambda s: s.node.zone_id),
    (Level.REGION, lambda s: s.node.region),
)


def _near(inventory: Inventory, views: Sequence[_CandidateView], request: GangRequest, need: int,
          best: _Choice) -> _Choice:
    """For a restarted gang: the best choice inside the narrowest domain that held all of its previous nodes,
    when that choice is as good as ``best`` by :func:`_rank` (widening one level at a time); else ``best``."""
    before = [state for name in sorted(request.near_nodes) if (state := inventory.state(name)) is not None]
    if not before:
        return best
    for _, domain_of in _DOMAIN_OF:
        home = {domain_of(state) for state in before}
        if len(home) != 1:
            continue
        choice = _choose(views, request, need, _inside(domain_of, home.pop()))
        if choice is not None and _rank(choice) <= _rank(best):
            return choice
    return best


def _inside(domain_of: Callable[[NodeState], Hashable], target: Hashable) -> Callable[[NodeState], bool]:
    return lambda state: domain_of(state) == target


def _replicas(count: int) -> str:
    return f"{count} replica" if count == 1 else f"{count} replicas"


class _CandidateView:
    """One candidate's nodes reduced to replica room, per (vendor, model) pool."""

    def __init__(self, inventory: Inventory, request: GangRequest, index: int, candidate: Candidate) -> None:
        self.inventory = inventory
        self.request = request
        self.index = index
        self.candidate = candidate
        self.slots: dict[str, list[_Slot]] = {}
        for vendor, model in inventory.pools():
            if vendor == candidate.vendor and model_matches(vendor, candidate.model, model):
                self.slots[model] = self._reduce(model)

    def _reduce(self, model: str, report: _PoolReport | None = None) -> list[_Slot]:
        """Nodes of ``model`` with room for at least one replica.

        The hot path reads only the inventory's nodes with free cards; with ``report`` (explanations only)
        it walks the whole pool and counts why each node was left out.
        """
        request, candidate = self.request, self.candidate
        per_replica = request.accelerators_per_replica
        family = family_of(candidate.vendor, model)
        strict = family.strict_link_domain
        one_domain = request.required_level is Level.LINK_DOMAIN
        min_mib = (
            candidate.min_memory_gib * _MIB_PER_GIB * _MEMORY_SLACK if candidate.min_memory_gib is not None else None
        )
        avoid = request.avoid_nodes
        selector = request.node_selector
        tolerations = request.tolerations
        problems: dict[tuple[int, ...], str | None] = {}
        fits: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        cpu, memory = request.cpu_millis, request.memory_bytes
        if report is None:
            states = self.inventory.available(candidate.vendor, model).values()
        else:
            states = self.inventory.pool(candidate.vendor, model).values()
            report.nodes = len(states)
        slots: list[_Slot] = []
        for state in states:
            node = state.node
            if report is not None and not node.schedulable:
                report.unschedulable += 1
                continue
            if avoid and node.name in avoid:
                if report is not None:
                    report.avoided += 1
                continue
            if node.taints and not all(any(t.tolerates(taint) for t in tolerations) for taint in node.taints):
                if report is not None:
                    report.untolerated += 1
                    report.taints.update(describe_taint(taint) for taint in node.taints
                                         if not any(t.tolerates(taint) for t in tolerations))
                continue
            if selector and any(node.labels.get(k) != v for k, v in selector):
                if report is not None:
                    report.unselected += 1
                continue
            if min_mib is not None and (node.memory_mib is None or node.memory_mib < min_mib):
                if report is not None:
                    report.low_memory += 1
                continue
            layout = node.link_domains
            key = (state.free, layout)
            room = fits.get(key)
            if room is None:
                if layout not in problems:
                    problems[layout] = shape_problem(family, model, node.cards, layout, per_replica)
                if problems[layout] is not None:
                    if report is not None:
                        report.shape = problems[layout]
                    room = 0
                else:
                    room = replicas_fitting(state.free, layout, per_replica, strict, one_domain)
                fits[key] = room
            if not room:
                continue
            if cpu:
                room = min(room, max(state.cpu_millis, 0) // cpu)
            if memory:
                room = min(room, max(state.memory_bytes, 0) // memory)
            if room:
                slots.append(_Slot(state, room, strict, self.index))
            elif report is not None:
                report.short_cpu_memory += 1
        return slots

    def best(self, need: int, keep: Callable[[NodeState], bool] | None = None) -> _Choice | None:
        """The best choice over this candidate's pools ("then by best fit" across models), among the nodes
        ``keep`` accepts when given."""
        choices = [
            choice
            for model, slots in sorted(self.slots.items())
            if (choice := _search(slots if keep is None else [s for s in slots if keep(s.state)],
                                  self.request.replicas, need, self.request.required_level, model))
        ]
        return min(choices, key=lambda c: (-_replica_count(c), c.key), default=None)

    def explain(self) -> tuple[str, ...]:
        request, candidate = self.request, self.candidate
        what = candidate.describe()
        memory = f", >= {candidate.min_memory_gib:g} GiB per card" if candidate.min_memory_gib else ""
        where = f" within one {request.required_level.label}" if request.required_level is not None else ""
        lines = [f"asked {_replicas(request.replicas)} (at least {request.min_replicas}) x "
                 f"{request.accelerators_per_replica} {what} cards{memory}, {request.cpu_millis}m CPU, "
                 f"{request.memory_bytes // 2**20} MiB memory each{where}"]
        if not self.slots:
            present = sorted(m for v, m in self.inventory.pools() if v == candidate.vendor)
            lines.append(f"no {what} nodes in the inventory" +
                         (f" ({candidate.vendor} models present: {', '.join(present)})" if present else ""))
            return tuple(lines)
        for model in sorted(self.slots):
            report = _PoolReport(model=model)
            self._reduce(model, report)
            if report.shape:
                lines.append(report.shape)
            low = f"below {candidate.min_memory_gib or 0:g} GiB per card (or of unknown memory)"
            taints = ", ".join(sorted(report.taints)[:3]) + (", ..." if len(report.taints) > 3 else "")
            for count, why in ((report.unschedulable, "cordoned or not Ready"),
                               (report.untolerated, f"tainted ({taints}) without a matching toleration in the "
                                                    "template"),
                               (report.avoided, "on the job's avoid list (failed before, or held for a "
                                                "preempting job)"),
                               (report.unselected, "without the template's nodeSelector labels "
                                f"({', '.join(f'{k}={v}' for k, v in request.node_selector)})"),
                               (report.low_memory, low),
                               (report.short_cpu_memory, "short of CPU or memory for one replica")):
                if count:
                    lines.append(f"{count} of {report.nodes} {model} nodes are {why}")
            slots = self.slots[model]
            lines.extend(_largest(self.inventory, candidate.vendor, model, slots, request))
        return tuple(lines)


def _replica_count(choice: _Choice) -> int:
    return sum(count for _, count in choice.picks)


def _largest(inventory: Inventory, vendor: str, model: str, slots: Sequence[_Slot],
             request: GangRequest) -> list[str]:
    """The largest free shape per level: the domain with the most replica room, and its free cards."""
    states = [s for s in inventory.pool(vendor, model).values() if s.node.schedulable]
    room = {s.state.node.name: s.room for s in slots}
    levels: list[tuple[str, Callable[[NodeState], Hashable], Callable[[NodeState], str]]] = [
        ("node", lambda s: s.node.name, lambda s: s.node.name),
        ("rack", lambda s: s.node.rack_id, lambda s: s.node.rack or f"(unlabelled, {s.node.name})"),
        ("zone", lambda s: s.node.zone_id, lambda s: s.node.zone or "(unlabelled)"),
        ("region", lambda s: s.node.region, lambda s: s.node.region or "(unlabelled)"),
    ]
    lines: list[str] = []
    shown: list[str] = []
    for level_name, key_of, name_of in levels:
        totals: dict[Hashable, list[int]] = {}
        names: dict[Hashable, str] = {}
        for state in states:
            key = key_of(state)
            entry = totals.setdefault(key, [0, 0, 0])
            entry[0] += room.get(state.node.name, 0)
            entry[1] += state.free_cards
            entry[2] += state.node.cards
            names[key] = name_of(state)
        if not totals:
            break
        best = max(totals, key=lambda k: (totals[k][0], totals[k][1], str(k)))
        replicas, free, cards = totals[best]
        shown.append(f"{level_name} {names[best]} has {free} of {cards} free {model} cards "
                     f"(room for {_replicas(replicas)})")
    total_room = sum(room.values())
    lines.append("largest free: " + "; ".join(shown) + f"; cluster room for {_replicas(total_room)}")
    return lines


def _search(slots: Sequence[_Slot], want: int, need: int, required: Level | None, tag: str) -> _Choice | None:
    """The best choice of ``need``..``want`` replicas inside ``required``, or None."""
    if not slots:
        return None
    racks: dict[RackId, list[_Slot]] = {}
    for slot in slots:
        racks.setdefault(slot.state.node.rack_id, []).append(slot)
    rack_room = {rack: sum(s.room for s in members) for rack, members in racks.items()}
    rooms = _RackRooms(racks)
    zones: dict[ZoneId, list[RackId]] = {}
    for rack in racks:
        zones.setdefault((rack[0], rack[1]), []).append(rack)
    zone_room = {zone: sum(rack_room[r] for r in members) for zone, members in zones.items()}
    regions: dict[str, list[ZoneId]] = {}
    for zone in zones:
        regions.setdefault(zone[0], []).append(zone)
    region_room = {region: sum(zone_room[z] for z in members) for region, members in regions.items()}

    widest: int = Level.REGION + 1 if required is None else max(required, Level.NODE)
    room_by_widest = {
        Level.NODE: max(s.room for s in slots),
        Level.RACK: max(rack_room.values()),
        Level.ZONE: max(zone_room.values()),
        Level.REGION: max(region_room.values()),
    }
    best_room = room_by_widest.get(Level(widest), 0) if widest <= Level.REGION else sum(region_room.values())
    target = min(want, best_room)
    if target < need:
        return None

    def rack_choice(rack_ids: Iterable[RackId], level: Level | None, tie: Hashable) -> _Choice | None:
        filled = _fill(list(rack_ids), racks, rack_room, rooms, target)
        if filled is None:
            return None
        used, picks = filled
        key = (
            Level.REGION + 1 if level is None else int(level),
            len(used),
            len({r[:2] for r in used}),
            len({r[0] for r in used}),
            len(picks),
            sum(rack_room[r] for r in used) - target,
            (tag, tie),
        )
        return _Choice(key=key, picks=tuple(picks), level=level)

    def best_of(options: Iterable[_Choice | None]) -> _Choice | None:
        return min((c for c in options if c is not None), key=lambda c: c.key, default=None)

    def best_set(sets: list[list[RackId]], level: Level | None, tie: Hashable) -> _Choice | None:
        """The best choice over rack sets tied on racks, zones and regions (given in best-fit order), stopping
        at the first whose node count none can beat: the fewest nodes of all their racks together."""
        floor = rooms.node_count(set(chain.from_iterable(sets)), target) if len(sets) > 1 else 0
        best: _Choice | None = None
        for chosen in sets:
            choice = rack_choice(chosen, level, tie)
            if choice is not None and (best is None or choice.key < best.key):
                best = choice
            if best is not None and best.key[4] <= floor:
                break
        return best

    # Node: the whole gang on one node.
    if widest >= Level.NODE:
        fitting = [s for s in slots if s.room >= target]
        if fitting:
            # Tightest fit; of equal room, the node with fewer free cards keeps fewer stranded after it.
            tightest = min(map(_ROOM, fitting))
            best = min((s for s in fitting if s.room == tightest),
                       key=lambda s: (sum(s.state.free), s.state.node.name))
            key = (int(Level.NODE), 1, 1, 1, 1, best.room - target, (tag, best.state.node.name))
            level = Level.LINK_DOMAIN if required is Level.LINK_DOMAIN else Level.NODE
            return _Choice(key=key, picks=((best, target),), level=level)
    if widest >= Level.RACK:
        choice = best_of(rack_choice([r], Level.RACK, r) for r, room in rack_room.items() if room >= target)
        if choice is not None:
            return choice
    if widest >= Level.ZONE:
        choice = best_of(rack_choice(zones[z], Level.ZONE, z) for z, room in zone_room.items() if room >= target)
        if choice is not None:
            return choice
    if widest >= Level.REGION:
        choice = best_of(best_set(_rack_sets(regions[g], zones, rack_room, target), Level.REGION, g)
                         for g, room in region_room.items() if room >= target)
        if choice is not None:
            return choice
    if widest > Level.REGION:
        all_zones = [z for members in regions.values() for z in members]
        return best_set(_rack_sets(all_zones, zones, rack_room, target), None, "")
    return None


class _RackRooms(dict[RackId, list[int]]):
    """Each rack's node rooms, largest first, sorted on first use: the exact node-count search reads the
    same racks many times within one plan."""

    def __init__(self, racks: dict[RackId, list[_Slot]]) -> None:
        super().__init__()
        self.racks = racks

    def __missing__(self, rack: RackId) -> list[int]:
        rooms = self[rack] = sorted((s.room for s in self.racks[rack]), reverse=True)
        return rooms

    def node_count(self, rack_ids: Iterable[RackId], target: int) -> int:
        """Fewest nodes of these racks whose room reaches ``target``: any k nodes hold at most the k largest
        rooms, so the first prefix of the merged rooms, largest first, that reaches it is the fewest."""
        return _prefix_count(sorted(chain.from_iterable(self[r] for r in rack_ids), reverse=True), target)


def _fill(rack_ids: Sequence[RackId], racks: dict[RackId, list[_Slot]], rack_room: dict[RackId, int],
          rooms: _RackRooms, target: int) -> tuple[list[RackId], list[tuple[_Slot, int]]] | None:
    """The fewest racks of ``rack_ids`` that reach ``target``, then the fewest nodes in them, then best fit.

    Returns (racks used, (node, replicas) picks), or None when all of them together fall short.
    """
    # Among racks of equal room, the one with fewer nodes (denser nodes) first.
    greedy = _pick([(rack_room[r], (len(racks[r]), r), r) for r in rack_ids], target)
    if greedy is None:
        return None
    used = [r for r, _ in greedy]
    if len(used) > 1 and comb(len(rack_ids), len(used)) <= EXACT_RACK_SETS:
        nodes = rooms.node_count(used, target)
        if nodes > rooms.node_count(rack_ids, target):  # the greedy set may not be node-minimal: try them all
            best = (nodes, sum(rack_room[r] for r in used) - target, sorted(used))
            for combo in combinations(sorted(rack_ids), len(used)):
                room = sum(rack_room[r] for r in combo)
                if room >= target:
                    best = min(best, (rooms.node_count(combo, target), room - target, list(combo)))
            used = best[2]
    picks = _pick([(s.room, (sum(s.state.free), s.state.node.name), s) for r in used for s in racks[r]], target)
    assert picks is not None  # the racks' room is the sum of their nodes' room
    return used, picks


def _rack_sets(zone_ids: Sequence[ZoneId], zones: dict[ZoneId, list[RackId]],
               rack_room: dict[RackId, int], target: int) -> list[list[RackId]]:
    """The racks of each zone set worth comparing (see :func:`_zone_sets`)."""
    return [[r for z in chosen for r in zones[z]] for chosen in _zone_sets(zone_ids, zones, rack_room, target)]


def _zone_sets(zone_ids: Sequence[ZoneId], zones: dict[ZoneId, list[RackId]],
               rack_room: dict[RackId, int], target: int) -> list[list[ZoneId]]:
    """Zone sets that reach ``target`` with the fewest racks, then fewest zones, then regions, best fit first.

    Exact (every tied set, up to :data:`EXACT_ZONE_SETS`, so the caller can break ties by node count) for at
    most :data:`EXACT_ZONE_SEARCH` zones; one greedy set above that.
    """
    every = sorted((rack_room[r] for z in zone_ids for r in zones[z]), reverse=True)
    fewest = _prefix_count(every, target)
    top_cache: dict[ZoneId, list[int]] = {z: sorted((rack_room[r] for r in zones[z]), reverse=True)[:fewest]
                                          for z in zone_ids}

    def reaches(chosen: Iterable[ZoneId]) -> bool:
        merged = sorted((room for z in chosen for room in top_cache[z]), reverse=True)
        return sum(merged[:fewest]) >= target

    ordered = sorted(zone_ids)
    if len(ordered) <= EXACT_ZONE_SEARCH:
        for size in range(1, len(ordered) + 1):
            feasible = [combo for combo in combinations(ordered, size) if reaches(combo)]
            if feasible:
                regions = min(len({z[0] for z in c}) for c in feasible)
                tied = sorted((c for c in feasible if len({z[0] for z in c}) == regions),
                              key=lambda c: (_waste(c, top_cache, fewest, target), c))
                return [list(c) for c in tied[:EXACT_ZONE_SETS]]
        return [ordered]  # pragma: no cover - the whole domain reaches target by construction
    chosen: list[ZoneId] = []
    for zone in sorted(ordered, key=lambda z: (-sum(top_cache[z]), z)):
        chosen.append(zone)
        if reaches(chosen):
            break
    for zone in sorted(chosen, key=lambda z: (sum(top_cache[z]), z)):
        rest = [z for z in chosen if z != zone]
        if rest and reaches(rest):
            chosen = rest
    return [chosen]


def _waste(chosen: Iterable[ZoneId], top: dict[ZoneId, list[int]], fewest: int, target: int) -> int:
    merged = sorted((room for z in chosen for room in top[z]), reverse=True)[:fewest]
    return sum(merged) - target


def _prefix_count(descending: Sequence[int], target: int) -> int:
    total = 0
    for i, room in enumerate(descending, 1):
        total += room
        if total >= target:
            return i
    return len(descending)


def _pick(items: Sequence[tuple[int, Hashable, T]], need: int) -> list[tuple[T, int]] | None:
    """Fewest items whose weights reach ``need``: largest first, and the last pick the smallest that fits.

    Ties of equal weight go to the smaller tie key (``(free cards, name)`` for nodes: fewer stranded cards).
    Returns (item, amount taken) pairs; every item but the last is taken whole.
    """
    order = sorted(items, key=lambda item: (-item[0], item[1]))
    negated = [-weight for weight, _, _ in order]
    picks: list[tuple[T, int]] = []
    remaining = need
    for i, (weight, _, item) in enumerate(order):
        last_fitting = bisect_right(negated, -remaining, lo=i) - 1
        if last_fitting >= i:
            first_of_weight = bisect_left(negated, negated[last_fitting], lo=i)
            picks.append((order[first_of_weight][2], remaining))
            return picks
        picks.append((item, weight))
        remaining -= weight
    return None


def _placement(request: GangRequest, choice: _Choice) -> Placement:
    picks = sorted(choice.picks, key=lambda p: (p[0].state.node.rack_id, p[0].state.node.name))
    replicas: list[ReplicaPlacement] = []
    for slot, count in picks:
        node = slot.state.node
        free = list(slot.state.free)
        domains = {Level.RACK: node.rack, Level.ZONE: node.zone, Level.REGION: node.region}
        per_replica = request.accelerators_per_replica
        if request.required_level is Level.LINK_DOMAIN:
            # The whole gang shares one domain: the one with the most room, then the lowest index.
            home = max(range(len(free)), key=lambda d: (free[d] // per_replica, -d))
            free = [f if d == home else 0 for d, f in enumerate(free)]
        for _ in range(count):
            taken = take_domains(free, per_replica, slot.strict, node.cards)
            replicas.append(ReplicaPlacement(
                index=len(replicas), node=node.name, resource=node.resource,
                count=per_replica, link_domains=taken, domains=domains,
                vendor=node.vendor, model=node.model, candidate_index=slot.candidate,
            ))
    nodes = [slot.state.node for slot, _ in picks]
    span = {
        Level.NODE: len({n.name for n in nodes}),
        Level.RACK: len({n.rack_id for n in nodes}),
        Level.ZONE: len({n.zone_id for n in nodes}),
        Level.REGION: len({n.region for n in nodes}),
    }
    models = {(n.vendor, n.model) for n in nodes}
    vendor, model = next(iter(models)) if len(models) == 1 else ("mixed", "mixed")
    preferred = request.preferred_level
    return Placement(
        candidate_index=min(slot.candidate for slot, _ in picks),
        vendor=vendor,
        model=model,
        replicas=tuple(replicas),
        span=span,
        level=choice.level,
        preferred_met=preferred is None or (choice.level is not None and choice.level <= preferred),
        leftover=choice.key[5],
    )
