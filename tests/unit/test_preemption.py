"""Choosing preemption victims: whole lower-priority gangs, fewest and least valuable, honouring the planner."""

from __future__ import annotations

from suanli.inventory import Inventory
from suanli.placement import RunningGang, choose_victims
from tests.unit.placement_helpers import gang, inventory_of, pod, vendor_node

ASCEND = "huawei.com/Ascend910"


def hold(inventory: Inventory, job: str, nodes: list[str], cards: int = 8) -> tuple[tuple[str, str], ...]:
    """Bind one `cards`-card pod of `job` on each node; returns the pod keys."""
    keys = []
    for i, node in enumerate(nodes):
        inventory.upsert_pod(pod(f"{job}-{i}", node, {ASCEND: str(cards)}, namespace="team"))
        keys.append(("team", f"{job}-{i}"))
    return tuple(keys)


def running(inventory: Inventory, job: str, nodes: list[str], priority: int, started: str,
            cards: int = 8) -> RunningGang:
    return RunningGang(f"team/{job}", priority, started, hold(inventory, job, nodes, cards), cards * len(nodes))


def full_rack() -> Inventory:
    return inventory_of(*(vendor_node(f"n{i}", rack="r1") for i in range(4)))


def test_the_lowest_priority_gang_goes_and_only_below_the_asker() -> None:
    inventory = full_rack()
    low = running(inventory, "low", ["n0", "n1"], 0, "2026-11-25T10:00:00Z")
    mid = running(inventory, "mid", ["n2", "n3"], 5, "2026-11-25T10:00:00Z")
    assert choose_victims(inventory, gang(2), 10, [mid, low]) == (low,)
    assert choose_victims(inventory, gang(2), 3, [mid, low]) == (low,)
    assert choose_victims(inventory, gang(2), 0, [mid, low]) is None, "equal priority is never preempted"
    assert choose_victims(inventory, gang(4), 3, [mid, low]) is None, "mid outranks the asker: 2 nodes are not 4"
    assert choose_victims(inventory, gang(4), 10, [mid, low]) == (low, mid)


def test_among_equals_the_most_recently_started_gang_goes() -> None:
    inventory = full_rack()
    old = running(inventory, "old", ["n0", "n1"], 0, "2026-11-25T08:00:00Z")
    new = running(inventory, "new", ["n2", "n3"], 0, "2026-11-25T11:00:00Z")
    assert choose_victims(inventory, gang(2), 1, [old, new]) == (new,)


def test_victims_that_do_not_help_are_given_back() -> None:
    inventory = inventory_of(vendor_node("n0", rack="r1"), vendor_node("n1", rack="r1"))
    inventory.upsert_pod(pod("other-team", "n0", {ASCEND: "7"}))  # another scheduler's pod: never a victim
    tiny = running(inventory, "tiny", ["n0"], 0, "2026-11-25T11:00:00Z", cards=1)
    whole = running(inventory, "whole", ["n1"], 0, "2026-11-25T09:00:00Z")
    # tiny is tried first (newest) but freeing its one card does not make a whole node; whole does alone.
    assert choose_victims(inventory, gang(1), 1, [tiny, whole]) == (whole,)


def test_the_what_if_leaves_the_inventory_exactly_as_it_was() -> None:
    inventory = full_rack()
    low = running(inventory, "low", ["n0", "n1", "n2", "n3"], 0, "2026-11-25T10:00:00Z")
    before = (inventory.generation, [s.free for n in inventory.nodes() if (s := inventory.state(n.name))])
    assert choose_victims(inventory, gang(3), 1, [low]) == (low,)
    after = (inventory.generation, [s.free for n in inventory.nodes() if (s := inventory.state(n.name))])
    assert after == before
    assert all(inventory.holds(key) for key in low.pods)
