"""Node choice inside the chosen racks: fewest nodes across the racks together, fewest cards stranded on ties.

The brute-force comparison for the node count is in test_placement_properties.py; these are the cases in
words, each of which the planner got wrong before nodes were chosen across racks (issue 12).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from suanli.inventory import Inventory
from suanli.placement import Placement, plan
from suanli.topology import Level
from tests.unit.placement_helpers import gang, inventory_of, pod, vendor_node

ASCEND = "huawei.com/Ascend910"
ONE_REPLICA_CPU = 8000  # millicores per replica below: a node's CPU then caps its replica room


def placed(inventory: Inventory, replicas: int, per_replica: int = 1, **kwargs: Any) -> Placement:
    outcome = plan(inventory, gang(replicas, per_replica, cpu_millis=ONE_REPLICA_CPU, **kwargs))
    assert isinstance(outcome, Placement), outcome
    return outcome


def sized(name: str, rack: str, room: int, zone: str = "z1") -> dict[str, object]:
    """An idle Ascend 910B x8 node whose CPU leaves room for exactly ``room`` one-card replicas."""
    return vendor_node(name, rack=rack, zone=zone, region="g1", cpu=str(8 * room))


def test_replicas_are_not_split_rack_by_rack_before_nodes_are_chosen() -> None:
    # The example: rack r1 has three nodes with room for 1 replica, rack r2 one node with room for 2.
    # Four replicas need both racks; largest rack first gave r1 three replicas on three nodes and r2 one,
    # 4 nodes in all, where r2's node taking 2 makes it 3.
    inventory = inventory_of(*(sized(f"r1-n{i}", "r1", 1) for i in range(3)), sized("r2-n0", "r2", 2))
    result = placed(inventory, 4)
    assert (result.span[Level.RACK], result.span[Level.NODE]) == (2, 3)
    assert Counter(r.node for r in result.replicas)["r2-n0"] == 2


def test_among_rack_minimal_sets_the_one_needing_fewer_nodes_wins() -> None:
    # 5 replicas need two racks. Largest rack first (r1, room 4) plus the best-fitting second rack uses five
    # one-replica nodes; r2 + r3 (the node with room 3, then two more) does it on three.
    inventory = inventory_of(
        *(sized(f"r1-n{i}", "r1", 1) for i in range(4)),
        *(sized(f"r2-n{i}", "r2", 1) for i in range(3)),
        sized("r3-n0", "r3", 3),
    )
    result = placed(inventory, 5)
    assert (result.level, result.span[Level.RACK], result.span[Level.NODE]) == (Level.ZONE, 2, 3)
    assert Counter(r.node for r in result.replicas)["r3-n0"] == 3


def test_fewer_racks_still_beat_fewer_nodes() -> None:
    # One rack of five one-replica nodes holds the gang; two racks could do it on two nodes. Racks come first.
    inventory = inventory_of(*(sized(f"r1-n{i}", "r1", 1) for i in range(5)),
                             sized("r2-n0", "r2", 3), sized("r3-n0", "r3", 2))
    result = placed(inventory, 5)
    assert (result.span[Level.RACK], result.span[Level.NODE]) == (1, 5)
    assert {r.domains[Level.RACK] for r in result.replicas} == {"r1"}


def stranding(name: str, busy_cards: int, cpu: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    """An Ascend node with ``busy_cards`` cards of ring 0 held by another pod."""
    pods = [pod(f"{name}-busy", name, {ASCEND: str(busy_cards)}, annotations={"suanli.io/link-domain": "0"})]
    return vendor_node(name, rack="r1", zone="z1", region="g1", cpu=cpu), pods if busy_cards else []


def test_a_whole_gang_on_one_node_goes_where_fewer_cards_are_stranded() -> None:
    # Both nodes have room for exactly 2 two-card replicas: n-a by its CPU (8 cards free, 4 would be left
    # stranded), n-b by its cards (4 free, none left). Names alone would pick n-a.
    a, _ = stranding("n-a", 0, "16")
    b, busy = stranding("n-b", 4, "192")
    result = placed(inventory_of(a, b, pods=tuple(busy)), 2, 2)
    assert {r.node for r in result.replicas} == {"n-b"}


def test_equal_room_nodes_are_taken_fewest_stranded_cards_first() -> None:
    # Four two-card replicas, each node has room for 2: the two nodes left with no free card win over n-a.
    a, _ = stranding("n-a", 0, "16")
    b, busy_b = stranding("n-b", 4, "192")
    c, busy_c = stranding("n-c", 4, "192")
    result = placed(inventory_of(a, b, c, pods=(*busy_b, *busy_c)), 4, 2)
    assert {r.node for r in result.replicas} == {"n-b", "n-c"}


def test_the_last_partly_used_node_is_the_one_stranding_fewer_cards() -> None:
    # Three two-card replicas: one node whole (room 2), then one replica on a node of room 2 — n-a would keep
    # 6 free cards after it (4 of them stranded by its CPU), n-c keeps 2.
    a, _ = stranding("n-a", 0, "16")
    b, busy_b = stranding("n-b", 4, "192")
    c, busy_c = stranding("n-c", 4, "192")
    result = placed(inventory_of(a, b, c, pods=(*busy_b, *busy_c)), 3, 2)
    assert Counter(r.node for r in result.replicas) == {"n-b": 2, "n-c": 1}
