"""Property tests: no over-commit, all-or-nothing, required level kept, span optimal against brute force
(level, racks, zones, regions, then nodes)."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.inventory import Inventory, NodeState
from suanli.placement import GangRequest, Placement, plan
from suanli.topology import Level
from tests.unit.placement_helpers import gang, inventory_of, pod, vendor_node

ASCEND = "huawei.com/Ascend910"
CLUSTER = Level.REGION + 1  # "anywhere": wider than any level


@st.composite
def clusters(draw: st.DrawFn) -> Inventory:
    """Up to 2 regions x 2 zones x 2 racks x 3 Ascend 910B nodes, partly used by other pods."""
    nodes: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] = []
    for g in range(draw(st.integers(1, 2))):
        for z in range(draw(st.integers(1, 2))):
            for r in range(draw(st.integers(1, 2))):
                for n in range(draw(st.integers(1, 3))):
                    name = f"g{g}z{z}r{r}n{n}"
                    cpu = draw(st.sampled_from(["192", "24"]))
                    nodes.append(vendor_node(name, rack=f"r{r}", zone=f"z{z}", region=f"g{g}", cpu=cpu))
                    used = draw(st.sampled_from([[], [], [8], [1], [2, 1], [4], [4, 2, 1]]))
                    for i, cards in enumerate(used):
                        ring = draw(st.sampled_from([None, "0", "1"]))
                        notes = {"suanli.io/link-domain": ring} if ring else {}
                        pods.append(pod(f"{name}-{i}", name, {ASCEND: str(cards)}, annotations=notes))
    return inventory_of(*nodes, pods=tuple(pods))


@st.composite
def requests(draw: st.DrawFn) -> GangRequest:
    # Whole-node and ring-sized replicas, weighted so that most gangs need several nodes or racks.
    replicas = draw(st.integers(1, 10))
    return gang(
        replicas,
        draw(st.sampled_from([1, 2, 4, 8, 8, 8])),
        min_replicas=draw(st.integers(1, replicas)),
        required=draw(st.sampled_from([None, None, Level.NODE, Level.RACK, Level.ZONE, Level.REGION])),
        cpu_millis=draw(st.sampled_from([0, 8000])),
    )


def room(state: NodeState, request: GangRequest) -> int:
    """Replicas that fit on a node, from the Ascend ring rule written out independently of the planner."""
    a = request.accelerators_per_replica
    if not state.node.schedulable:
        return 0
    cards = state.free[0] + state.free[1] == 8 if a == 8 else sum(f // a for f in state.free)
    fit = int(cards)
    if request.cpu_millis:
        fit = min(fit, state.cpu_millis // request.cpu_millis)
    return fit


def domain_of(state: NodeState, level: int) -> tuple[str, ...]:
    node = state.node
    path = {
        Level.NODE: (node.region, node.zone, node.rack, node.name),
        Level.RACK: (node.region, node.zone, node.rack),
        Level.ZONE: (node.region, node.zone),
        Level.REGION: (node.region,),
    }
    return path.get(Level(level), ()) if level <= Level.REGION else ()


Span = tuple[int, int, int, int, int]


def fewest_nodes(rooms: list[int], target: int) -> int:
    """Fewest of these nodes whose rooms reach ``target``: any k nodes hold at most the k largest rooms, so
    the first prefix of the rooms sorted largest first that reaches it is the fewest."""
    total = 0
    for count, room_ in enumerate(sorted(rooms, reverse=True), 1):
        total += room_
        if total >= target:
            return count
    raise AssertionError("only called for sets that reach target")


def brute_force(inventory: Inventory, request: GangRequest) -> tuple[int, Span | None]:
    """(replicas to expect, best (level, racks, zones, regions, nodes)) by trying every set of racks.

    A set whose fewest nodes leave one of its racks unused is scored as if it used them all; the smaller set
    without that rack is tried too and scores better, so the minimum is still right."""
    states = [s for n in inventory.nodes() if (s := inventory.state(n.name)) is not None]
    rooms = {s.node.name: room(s, request) for s in states}
    widest = CLUSTER if request.required_level is None else int(request.required_level)
    per_domain: Counter[tuple[str, ...]] = Counter()
    for s in states:
        per_domain[domain_of(s, widest)] += rooms[s.node.name]
    target = min(request.replicas, max(per_domain.values(), default=0))
    if target < request.min_replicas:
        return target, None
    if any(r >= target for r in rooms.values()):
        return target, (Level.NODE, 1, 1, 1, 1)
    rack_room: dict[tuple[str, ...], int] = defaultdict(int)
    rack_nodes: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for s in states:
        rack_room[domain_of(s, Level.RACK)] += rooms[s.node.name]
        rack_nodes[domain_of(s, Level.RACK)].append(rooms[s.node.name])
    best: Span | None = None
    for size in range(1, len(rack_room) + 1):
        for subset in combinations(rack_room, size):
            if sum(rack_room[r] for r in subset) < target:
                continue
            zones = len({r[:2] for r in subset})
            regions = len({r[:1] for r in subset})
            level = (
                Level.RACK
                if size == 1
                else Level.ZONE
                if zones == 1
                else Level.REGION
                if regions == 1
                else CLUSTER
            )
            if level <= widest:
                nodes = fewest_nodes([room_ for r in subset for room_ in rack_nodes[r]], target)
                key = (int(level), size, zones, regions, nodes)
                best = key if best is None or key < best else best
    return target, best


def check_no_overcommit(inventory: Inventory, request: GangRequest, result: Placement) -> None:
    per_node = Counter(r.node for r in result.replicas)
    for name, count in per_node.items():
        state = inventory.state(name)
        assert state is not None and count <= room(state, request)
        taken = [0] * len(state.free)
        for replica in (r for r in result.replicas if r.node == name):
            share = request.accelerators_per_replica // len(replica.link_domains)
            for d in replica.link_domains:
                taken[d] += share
        assert all(t <= f for t, f in zip(taken, state.free, strict=True)), (taken, state.free)
    # Reserving the plan through the inventory's own path leaves nothing overcommitted.
    for replica in result.replicas:
        inventory.upsert_pod(
            pod(
                f"job-{replica.index}",
                replica.node,
                {replica.resource: str(replica.count), "cpu": f"{request.cpu_millis}m"},
                namespace="team",
                annotations={"suanli.io/link-domain": "+".join(map(str, replica.link_domains))},
            )
        )
    for name in per_node:
        state = inventory.state(name)
        assert (
            state is not None and state.overcommitted == 0 and min(state.free) >= 0 and state.cpu_millis >= 0
        )


def check_plan(inventory: Inventory, request: GangRequest) -> None:
    target, best = brute_force(inventory, request)
    outcome = plan(inventory, request)
    if best is None:
        assert not isinstance(outcome, Placement), (target, outcome)
        return
    assert isinstance(outcome, Placement), (target, best, outcome)
    assert len(outcome.replicas) == target  # the most replicas any allowed domain holds, never fewer
    assert request.min_replicas <= len(outcome.replicas) <= request.replicas
    widest = CLUSTER if request.required_level is None else int(request.required_level)
    states = [inventory.state(r.node) for r in outcome.replicas]
    assert len({domain_of(s, widest) for s in states if s is not None}) == 1
    level = CLUSTER if outcome.level is None else int(outcome.level)
    span = outcome.span
    assert (level, span[Level.RACK], span[Level.ZONE], span[Level.REGION], span[Level.NODE]) == best
    assert len({r.node for r in outcome.replicas}) == span[Level.NODE]
    assert plan(inventory, request) == outcome  # deterministic
    check_fewest_stranded(inventory, request, outcome)
    check_no_overcommit(inventory, request, outcome)


def check_fewest_stranded(inventory: Inventory, request: GangRequest, result: Placement) -> None:
    """No node left out could have taken a used node's place with fewer free cards left stranded: among
    nodes of equal room (in the racks used; anywhere for a one-node gang), the used ones have the fewest
    free cards."""
    used = {r.node for r in result.replicas}
    states = {n.name: s for n in inventory.nodes() if (s := inventory.state(n.name)) is not None}
    racks = {domain_of(states[name], Level.RACK) for name in used}
    for name in used:
        mine = room(states[name], request)
        for other, state in states.items():
            if other in used or room(state, request) != mine:
                continue
            if len(used) == 1 or domain_of(state, Level.RACK) in racks:
                assert states[name].free_cards <= state.free_cards, (name, other)


@st.composite
def wide_requests(draw: st.DrawFn) -> GangRequest:
    """Whole-node gangs larger than a rack usually is: exercises the rack/zone/region search."""
    replicas = draw(st.integers(3, 12))
    return gang(
        replicas,
        8,
        min_replicas=draw(st.integers(1, replicas)),
        required=draw(st.sampled_from([None, Level.ZONE, Level.REGION])),
    )


@settings(max_examples=150, deadline=None)
@given(clusters(), requests())
def test_plans_are_all_or_nothing_within_the_required_level_and_span_optimal(
    inventory: Inventory, request: GangRequest
) -> None:
    check_plan(inventory, request)


@settings(max_examples=150, deadline=None)
@given(clusters(), wide_requests())
def test_wide_gangs_use_the_fewest_racks_then_zones_then_regions(
    inventory: Inventory, request: GangRequest
) -> None:
    check_plan(inventory, request)


@st.composite
def uneven_clusters(draw: st.DrawFn) -> Inventory:
    """Up to 2 zones x 4 racks x 4 idle Ascend nodes whose CPU caps their room at 1-4 one-card replicas:
    racks of uneven nodes, where splitting replicas rack by rack before choosing nodes costs extra nodes."""
    nodes = [
        vendor_node(f"z{z}r{r}n{n}", rack=f"r{r}", zone=f"z{z}", region="g0", cpu=str(8 * draw(st.integers(1, 4))))
        for z in range(draw(st.integers(1, 2)))
        for r in range(draw(st.integers(1, 4)))
        for n in range(draw(st.integers(1, 4)))
    ]
    return inventory_of(*nodes)


@st.composite
def one_card_requests(draw: st.DrawFn) -> GangRequest:
    replicas = draw(st.integers(2, 24))
    return gang(replicas, 1, min_replicas=draw(st.integers(1, replicas)), cpu_millis=8000,
                required=draw(st.sampled_from([None, Level.RACK, Level.ZONE])))


@settings(max_examples=200, deadline=None)
@given(uneven_clusters(), one_card_requests())
def test_uneven_nodes_use_the_fewest_nodes_inside_the_fewest_racks(inventory: Inventory, request: GangRequest) -> None:
    check_plan(inventory, request)
