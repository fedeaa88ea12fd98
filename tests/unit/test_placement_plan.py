"""The planner: gang all-or-nothing, narrowest domain, best fit, vendor rules, explanations."""

from __future__ import annotations

import random

import pytest

from suanli.inventory import Inventory
from suanli.placement import Candidate, GangRequest, Placement, Toleration, Unplaceable, plan
from suanli.topology import Level
from tests.unit.placement_helpers import gang, inventory_of, node, pod, vendor_node

ASCEND = "huawei.com/Ascend910"


def placed(inventory: Inventory, request: GangRequest) -> Placement:
    outcome = plan(inventory, request)
    assert isinstance(outcome, Placement), outcome
    return outcome


def refused(inventory: Inventory, request: GangRequest) -> Unplaceable:
    outcome = plan(inventory, request)
    assert isinstance(outcome, Unplaceable), outcome
    return outcome


def busy(node_name: str, cards: int, index: int = 0, resource: str = ASCEND) -> dict[str, object]:
    return pod(f"{node_name}-busy{index}", node_name, {resource: str(cards)})


def rack_fleet() -> Inventory:
    """Racks r1 (4 free nodes), r2 (2 free), r3 (3 free) in zone z1; r4 (4 free) in zone z2."""
    nodes = []
    pods = []
    for rack, zone, total, free in (
        ("r1", "z1", 4, 4),
        ("r2", "z1", 4, 2),
        ("r3", "z1", 4, 3),
        ("r4", "z2", 4, 4),
    ):
        for i in range(total):
            name = f"{rack}-n{i}"
            nodes.append(vendor_node(name, rack=rack, zone=zone, region="g1"))
            if i >= free:
                pods.append(busy(name, 8))
    return inventory_of(*nodes, pods=tuple(pods))


def test_whole_gang_in_one_rack_with_the_tightest_fit() -> None:
    result = placed(rack_fleet(), gang(3))
    assert {r.domains[Level.RACK] for r in result.replicas} == {
        "r3"
    }  # r3 fits 3 exactly; r1/r4 would leave 1
    assert (result.level, result.span[Level.RACK], result.leftover) == (Level.RACK, 1, 0)
    assert [r.index for r in result.replicas] == [0, 1, 2]
    assert all(r.resource == ASCEND and r.count == 8 and r.link_domains == (0, 1) for r in result.replicas)


def test_fewest_racks_then_zone_before_crossing_zones() -> None:
    result = placed(rack_fleet(), gang(7))
    # 4 + 3 in z1 (r1 + r3) beats r1 + r4 across zones and three racks.
    assert {r.domains[Level.RACK] for r in result.replicas} == {"r1", "r3"}
    assert result.level is Level.ZONE and result.span[Level.ZONE] == 1
    assert result.preferred_met is True


def test_required_level_is_never_exceeded_and_min_replicas_is_the_floor() -> None:
    inventory = rack_fleet()
    refusal = refused(inventory, gang(5, required=Level.RACK))
    assert "within one rack" in refusal.summary
    partial = placed(inventory, gang(5, min_replicas=3, required=Level.RACK))
    assert len(partial.replicas) == 4 and partial.span[Level.RACK] == 1
    assert placed(inventory, gang(5)).span[Level.RACK] == 2


def test_preferred_level_is_a_soft_target() -> None:
    result = placed(rack_fleet(), gang(7, preferred_level=Level.RACK))
    assert len(result.replicas) == 7 and result.preferred_met is False


def test_the_same_input_gives_the_same_answer_whatever_the_event_order() -> None:
    fleet = rack_fleet()
    nodes = [fleet.state(n.name) for n in fleet.nodes()]
    shuffled = [s.node.name for s in nodes if s is not None]
    random.Random(7).shuffle(shuffled)
    again = Inventory()
    for name in shuffled:
        rack, _, i = name.partition("-n")
        zone = "z2" if rack == "r4" else "z1"
        again.upsert_node(vendor_node(name, rack=rack, zone=zone, region="g1"))
    for name in shuffled:
        rack, _, i = name.partition("-n")
        if int(i) >= {"r1": 4, "r2": 2, "r3": 3, "r4": 4}[rack]:
            again.upsert_pod(busy(name, 8))
    assert plan(again, gang(7)) == plan(fleet, gang(7)) == plan(fleet, gang(7))


def test_ascend_rings_one_two_four_and_whole_node() -> None:
    inventory = inventory_of(vendor_node("a"), pods=(busy("a", 2),))  # ring 0 has 2 free, ring 1 has 4
    four = placed(inventory, gang(1, 4))
    assert four.replicas[0].link_domains == (1,)
    two = placed(inventory, gang(2, 2))
    assert sorted(r.link_domains for r in two.replicas) == [(0,), (1,)]  # best fit keeps ring 1 half whole
    assert isinstance(plan(inventory, gang(1, 8)), Unplaceable)  # whole node needs all 8 free
    assert len(placed(inventory, gang(3, 2)).replicas) == 3
    assert isinstance(plan(inventory, gang(4, 2)), Unplaceable)  # 2 + 4 free cards, but pairs: 1 + 2


@pytest.mark.parametrize(
    ("model", "cards", "per_replica", "words"),
    [
        ("Ascend910B", 8, 3, "1, 2 or 4 cards inside one 4-chip HCCS ring"),
        ("Ascend910B", 8, 16, "a replica lives on one node"),
        ("Ascend910C", 16, 3, "pairs"),
    ],
)
def test_vendor_rules_rule_requests_out_with_the_rule_in_words(
    model: str, cards: int, per_replica: int, words: str
) -> None:
    labels = {"accelerator-type": "module-a3-16" if model == "Ascend910C" else "module-910b-8"}
    inventory = inventory_of(node("a", labels, {ASCEND: str(cards)}))
    refusal = refused(inventory, gang(1, per_replica, model=model))
    assert any(words in line for line in refusal.reasons[0])


def test_nvidia_may_span_cliques_but_prefers_one() -> None:
    labels = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "suanli.io/accelerator.link-domains": "2x4"}
    inventory = inventory_of(
        node("g", labels, {"nvidia.com/gpu": "8"}), pods=(busy("g", 1, resource="nvidia.com/gpu"),)
    )
    result = placed(inventory, gang(1, 6, vendor="nvidia", model="H100"))
    assert result.replicas[0].link_domains == (0, 1)
    assert placed(inventory, gang(1, 3, vendor="nvidia", model="H100")).replicas[0].link_domains == (0,)


def test_candidates_in_preference_order_full_count_first() -> None:
    inventory = inventory_of(
        *(vendor_node(f"a{i}", rack="ra") for i in range(2)),
        *(vendor_node(f"g{i}", vendor="nvidia", rack="rg") for i in range(4)),
    )
    both = (Candidate("huawei", "Ascend910B"), Candidate("nvidia", "H100"))
    assert placed(inventory, gang(2, candidates=both)).vendor == "huawei"
    # Four replicas fit only on NVIDIA: the full count on the second choice beats half on the first.
    result = placed(inventory, gang(4, min_replicas=2, candidates=both))
    assert (result.vendor, result.model, result.candidate_index, len(result.replicas)) == (
        "nvidia",
        "H100",
        1,
        4,
    )


def test_any_model_of_a_vendor_picks_the_best_fitting_model_but_never_mixes() -> None:
    a3 = {"accelerator-type": "module-a3-16"}
    inventory = inventory_of(
        vendor_node("b0", rack="r1"), vendor_node("b1", rack="r1"), node("c0", a3, {ASCEND: "16"}, rack="r2")
    )
    result = placed(inventory, gang(2, 8, model=None))
    assert result.model == "Ascend910C" and {r.node for r in result.replicas} == {"c0"}
    assert isinstance(plan(inventory, gang(5, 8, model=None)), Unplaceable)


def test_mixing_only_when_allowed_and_only_when_needed() -> None:
    inventory = inventory_of(vendor_node("a0", rack="r1"), vendor_node("g0", vendor="nvidia", rack="r1"))
    both = (Candidate("huawei", "Ascend910B"), Candidate("nvidia", "H100"))
    assert isinstance(plan(inventory, gang(2, candidates=both)), Unplaceable)
    mixed = placed(inventory, gang(2, candidates=both, allow_mixing=True))
    assert mixed.model == "mixed"
    assert sorted(r.resource for r in mixed.replicas) == [ASCEND, "nvidia.com/gpu"]


def test_memory_cpu_avoid_and_cordon_filters_are_explained() -> None:
    inventory = inventory_of(
        vendor_node("small-cpu", cpu="4", rack="r1"),
        vendor_node("avoided", rack="r1"),
        vendor_node("cordoned", unschedulable=True, rack="r1"),
    )
    request = gang(
        1,
        8,
        cpu_millis=8000,
        avoid_nodes=frozenset({"avoided"}),
        candidates=(Candidate("huawei", "Ascend910B", min_memory_gib=32),),
    )
    text = "\n".join(refused(inventory, request).reasons[0])
    assert "1 of 3 Ascend910B nodes are cordoned or not Ready" in text
    assert "1 of 3 Ascend910B nodes are on the job's avoid list" in text
    assert "1 of 3 Ascend910B nodes are short of CPU or memory" in text
    high_memory = gang(1, 8, candidates=(Candidate("huawei", "Ascend910B", min_memory_gib=96),))
    assert "below 96 GiB per card" in "\n".join(refused(inventory, high_memory).reasons[0])


def test_unplaceable_names_the_largest_free_shape_per_level() -> None:
    inventory = inventory_of(
        *(vendor_node(f"n{i}", rack="r3", zone="z1") for i in range(2)), pods=(busy("n0", 2),)
    )
    refusal = refused(inventory, gang(2))
    text = "\n".join(refusal.reasons[0])
    assert "rack r3 has 14 of 16 free Ascend910B cards (room for 1 replica)" in text
    assert "node n1 has 8 of 8 free" in text
    assert refusal.summary.startswith("team/job: no room for 2 of 2 replicas x 8 cards (Ascend910B)")
    missing = refused(inventory, gang(1, vendor="nvidia", model="H100"))
    assert "no H100 nodes in the inventory" in missing.reasons[0][1]


def test_reserving_by_upserting_the_bound_pods_is_counted_once() -> None:
    inventory = inventory_of(vendor_node("a"))
    first = placed(inventory, gang(2, 4))
    for replica in first.replicas:
        bound = pod(
            f"job-{replica.index}",
            replica.node,
            {replica.resource: str(replica.count)},
            namespace="team",
            annotations={"suanli.io/link-domain": "+".join(map(str, replica.link_domains))},
        )
        inventory.upsert_pod(bound)
        inventory.upsert_pod(bound)
    state = inventory.state("a")
    assert state is not None and state.free == (0, 0) and state.overcommitted == 0
    assert isinstance(plan(inventory, gang(1, 1)), Unplaceable)


def test_link_domain_level_keeps_the_gang_in_one_ring() -> None:
    inventory = inventory_of(vendor_node("a"), pods=(busy("a", 1),))
    result = placed(inventory, gang(2, 2, required=Level.LINK_DOMAIN))
    assert {r.link_domains for r in result.replicas} == {(1,)}
    assert result.level is Level.LINK_DOMAIN
    assert isinstance(plan(inventory, gang(3, 2, required=Level.LINK_DOMAIN)), Unplaceable)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"replicas": 0}, "replicas=0"),
        ({"min_replicas": 5}, "min_replicas=5"),
        ({"accelerators_per_replica": 0}, "accelerators_per_replica=0"),
        ({"candidates": ()}, "candidates"),
        ({"cpu_millis": -1}, "cpu_millis"),
    ],
)
def test_bad_requests_name_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "key": "a/b",
        "replicas": 2,
        "min_replicas": 1,
        "accelerators_per_replica": 8,
        "candidates": (Candidate("huawei", "Ascend910B"),),
    }
    with pytest.raises(ValueError, match=field):
        GangRequest(**{**base, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vendor 'amd'"):
        Candidate("amd")


@pytest.mark.parametrize(
    ("wanted", "selects"),
    [
        ("Ascend910B", True),
        ("ascend910b", True),
        ("910B3", True),
        ("Ascend910", False),
        ("Ascend910C", False),
    ],
)
def test_job_model_names_are_normalised_before_matching(wanted: str, selects: bool) -> None:
    inventory = inventory_of(vendor_node("a"))
    assert isinstance(plan(inventory, gang(1, model=wanted)), Placement) is selects


def test_a_model_selects_its_suffixed_variants() -> None:
    inventory = inventory_of(vendor_node("k", vendor="hygon"))  # hcu.name=K100_AI -> DCU-K100-AI
    assert placed(inventory, gang(1, vendor="hygon", model="K100")).model == "DCU-K100-AI"
    assert isinstance(plan(inventory, gang(1, vendor="hygon", model="Z100")), Unplaceable)


def test_an_80_gib_request_matches_the_80_gb_h100_drivers_report_as_79_6_gib() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from fleet import node_dict
    from suanli.inventory import Inventory
    from suanli.placement import Candidate, GangRequest, Placement, plan

    inventory = Inventory()
    inventory.upsert_node(node_dict("h100", 1, "r0", "z0", "region-a"))  # GFD: gpu.memory=81559 MiB
    ask = GangRequest(key="ns/j", replicas=1, min_replicas=1, accelerators_per_replica=8,
                      candidates=(Candidate("nvidia", "H100", min_memory_gib=80),))
    assert isinstance(plan(inventory, ask), Placement)
    too_much = GangRequest(key="ns/j", replicas=1, min_replicas=1, accelerators_per_replica=8,
                           candidates=(Candidate("nvidia", "H100", min_memory_gib=96),))
    assert not isinstance(plan(inventory, too_much), Placement)


def test_a_restarted_gang_prefers_the_domain_it_ran_in_but_never_a_wider_one() -> None:
    # Zone z1: r1 (4 free nodes), r2 (2), r3 (3); zone z2: r4 (4). A 3-replica gang's best fit is r3.
    assert {r.domains[Level.RACK] for r in placed(rack_fleet(), gang(3)).replicas} == {"r3"}
    # It ran in r4 and lost r4-n0: r4's other three nodes hold it as narrowly (one rack), so it goes back.
    back = placed(rack_fleet(), gang(3, near_nodes=frozenset({"r4-n0", "r4-n1", "r4-n2"}),
                                     avoid_nodes=frozenset({"r4-n0"})))
    assert {r.node for r in back.replicas} == {"r4-n1", "r4-n2", "r4-n3"} and back.level is Level.RACK
    # A one-node gang whose node is healthy goes back to that very node.
    assert placed(rack_fleet(), gang(1, near_nodes=frozenset({"r1-n2"}))).replicas[0].node == "r1-n2"
    # r2 (2 free) cannot hold 3 in one rack; staying in its zone would span two racks, while r3 holds the
    # gang in one: the narrower placement wins over the old neighbourhood.
    moved = placed(rack_fleet(), gang(3, near_nodes=frozenset({"r2-n0", "r2-n1"})))
    assert {r.domains[Level.RACK] for r in moved.replicas} == {"r3"}
    # Previous nodes that are gone from the inventory change nothing.
    assert placed(rack_fleet(), gang(3, near_nodes=frozenset({"gone"}))).replicas == placed(
        rack_fleet(), gang(3)).replicas


def test_a_restarted_gang_keeps_its_preferred_candidate_over_its_old_domain() -> None:
    inventory = inventory_of(
        vendor_node("gpu-0", "nvidia", rack="r1"),
        vendor_node("npu-0", rack="r2"),
        vendor_node("npu-1", rack="r2"),
    )
    request = gang(1, candidates=(Candidate("huawei", "Ascend910B"), Candidate("nvidia", "H100")),
                   near_nodes=frozenset({"gpu-0"}))
    result = placed(inventory, request)
    assert result.candidate_index == 0 and result.replicas[0].node.startswith("npu-")


def test_node_selector_is_honoured_and_explained() -> None:
    inventory = inventory_of(vendor_node("plain-0", rack="r1"), vendor_node("plain-1", rack="r1"))
    labelled = vendor_node("ib-0", rack="r2")
    labelled["metadata"]["labels"]["network"] = "infiniband"
    inventory.upsert_node(labelled)
    request = gang(1, node_selector=(("network", "infiniband"),))
    assert placed(inventory, request).replicas[0].node == "ib-0"
    inventory.upsert_pod(busy("ib-0", 8))
    text = "\n".join(refused(inventory, request).reasons[0])
    assert "2 of 3 Ascend910B nodes are without the template's nodeSelector labels (network=infiniband)" in text


def test_tainted_nodes_take_only_jobs_that_tolerate_every_taint() -> None:
    def tainted(name: str, *taints: tuple[str, str, str]) -> dict[str, object]:
        item = vendor_node(name, rack="r1")
        item["spec"]["taints"] = [{"key": k, "value": v, "effect": e} for k, v, e in taints]
        return item

    inventory = inventory_of(
        tainted("pool-0", ("dedicated", "training", "NoSchedule")),
        tainted("pool-1", ("dedicated", "training", "NoSchedule"), ("gpu-burn", "", "NoExecute")),
        tainted("maint", ("maintenance", "yes", "NoSchedule")),
    )
    text = "\n".join(refused(inventory, gang(1)).reasons[0])
    assert "3 of 3 Ascend910B nodes are tainted (dedicated=training:NoSchedule, gpu-burn:NoExecute, " \
           "maintenance=yes:NoSchedule) without a matching toleration in the template" in text
    equal = Toleration("dedicated", value="training", effect="NoSchedule")
    assert placed(inventory, gang(1, tolerations=(equal,))).replicas[0].node == "pool-0"
    assert isinstance(plan(inventory, gang(2, tolerations=(equal,))), Unplaceable), "pool-1's NoExecute taint"
    every_key = Toleration("dedicated", exists=True)
    both = (every_key, Toleration("gpu-burn", exists=True, effect="NoExecute"))
    assert {r.node for r in placed(inventory, gang(2, tolerations=both)).replicas} == {"pool-0", "pool-1"}
    wrong_effect = Toleration("dedicated", value="training", effect="NoExecute")
    assert isinstance(plan(inventory, gang(1, tolerations=(wrong_effect,))), Unplaceable)
    assert len(placed(inventory, gang(3, tolerations=(Toleration(exists=True),))).replicas) == 3, "tolerate all"


def test_a_node_two_candidates_accept_is_counted_once_when_mixing() -> None:
    inventory = inventory_of(vendor_node("g0", "nvidia", rack="r1"), vendor_node("g1", "nvidia", rack="r1"))
    both = (Candidate("nvidia", "H100"), Candidate("nvidia"))
    refusal = refused(inventory, gang(3, candidates=both, allow_mixing=True))
    assert "combining all candidates gives room for 2 replicas" in refusal.mixed_reasons[0]
    fits = placed(inventory, gang(2, candidates=both, allow_mixing=True))
    assert [r.candidate_index for r in fits.replicas] == [0, 0]


def test_each_replica_records_the_candidate_it_was_placed_as() -> None:
    inventory = inventory_of(vendor_node("g0", "nvidia", rack="r1"))
    picky = (Candidate("nvidia", "H100", min_memory_gib=96), Candidate("nvidia"))
    result = placed(inventory, gang(1, candidates=picky))
    assert result.candidate_index == 1 and result.replicas[0].candidate_index == 1, "not the 96 GiB candidate"
