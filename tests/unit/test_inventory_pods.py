"""Free capacity = allocatable minus what every non-terminal bound pod requests, kept per link domain."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.inventory import Inventory
from tests.unit.placement_helpers import ASCEND_LEGACY_910B, inventory_of, node, pod, vendor_node

ASCEND = "huawei.com/Ascend910"


def free(inventory: Inventory, name: str = "n1") -> tuple[tuple[int, ...], int, int]:
    state = inventory.state(name)
    assert state is not None
    return state.free, state.cpu_millis, state.memory_bytes


def test_bound_pods_of_any_scheduler_hold_cards_cpu_and_memory() -> None:
    inventory = inventory_of(
        vendor_node("n1", cpu="64", memory="512Gi"),
        pods=(
            pod("a", "n1", {ASCEND: "4", "cpu": "8", "memory": "64Gi"}),
            pod("b", "n1", {ASCEND: "2", "cpu": "500m", "memory": "1Gi"}),
        ),
    )
    assert free(inventory) == ((0, 2), 64_000 - 8_500, (512 - 65) * 2**30)


def test_unbound_and_finished_pods_hold_nothing() -> None:
    inventory = inventory_of(
        vendor_node("n1"),
        pods=(
            pod("pending", None, {ASCEND: "8"}),
            pod("done", "n1", {ASCEND: "8"}, phase="Succeeded"),
            pod("failed", "n1", {ASCEND: "8"}, phase="Failed"),
        ),
    )
    assert free(inventory)[0] == (4, 4)


def test_the_same_pod_seen_again_is_not_counted_twice_and_removal_frees_it() -> None:
    inventory = inventory_of(vendor_node("n1"))
    reserved = pod("r0", "n1", {ASCEND: "4"}, annotations={"suanli.io/link-domain": "1"})
    inventory.upsert_pod(reserved)
    inventory.upsert_pod(reserved)
    assert free(inventory)[0] == (4, 0)
    inventory.upsert_pod({**reserved, "status": {"phase": "Succeeded"}})
    assert free(inventory)[0] == (4, 4)
    inventory.upsert_pod(reserved)
    inventory.remove_pod("busy", "r0")
    assert free(inventory)[0] == (4, 4)


def test_pods_seen_before_their_node_count_once_it_arrives() -> None:
    inventory = Inventory()
    inventory.upsert_pod(pod("early", "n1", {ASCEND: "8"}))
    inventory.upsert_node(vendor_node("n1"))
    assert free(inventory)[0] == (0, 0)
    inventory.remove_node("n1")
    inventory.upsert_node(vendor_node("n1"))
    assert free(inventory)[0] == (0, 0)


def test_annotated_pods_keep_their_ring_and_others_fit_best() -> None:
    inventory = inventory_of(
        vendor_node("n1"),
        pods=(
            pod("ours", "n1", {ASCEND: "1"}, annotations={"suanli.io/link-domain": "1"}),
            pod("theirs", "n1", {ASCEND: "2"}),
        ),
    )
    # The 2-card pod joins the fuller ring 1 and leaves ring 0 whole for a 4-card replica.
    assert free(inventory)[0] == (4, 1)
    bad = pod("bad-annotation", "n1", {ASCEND: "1"}, annotations={"suanli.io/link-domain": "7"})
    inventory.upsert_pod(bad)
    assert free(inventory)[0] == (4, 0)


def test_init_containers_sidecars_overhead_and_limits_only() -> None:
    item = pod("p", "n1", {"cpu": "2", "memory": "1Gi"}, init=[{"cpu": "6"}, {"cpu": "1", "memory": "4Gi"}])
    item["spec"]["initContainers"].append(
        {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}
    )
    item["spec"]["overhead"] = {"cpu": "250m"}
    item["spec"]["containers"].append({"name": "gpu", "resources": {"limits": {ASCEND: "2"}}})
    inventory = inventory_of(vendor_node("n1", cpu="32", memory="64Gi"), pods=(item,))
    # cpu: max(2 + sidecar 1, init 6) + overhead; memory: max(1Gi, 4Gi); cards from limits alone.
    assert free(inventory) == ((2, 4), 32_000 - 6_250, 60 * 2**30)


def test_unhealthy_cards_are_taken_out_of_the_fullest_ring() -> None:
    labels = {**ASCEND_LEGACY_910B, "suanli.io/accelerator.healthy": "6"}
    inventory = inventory_of(node("n1", labels, {ASCEND: "8"}), pods=(pod("a", "n1", {ASCEND: "1"}),))
    assert free(inventory)[0] == (1, 4)


def test_overcommit_by_another_scheduler_is_reported_not_hidden() -> None:
    inventory = inventory_of(
        vendor_node("n1"), pods=(pod("a", "n1", {ASCEND: "8"}), pod("b", "n1", {ASCEND: "2"}))
    )
    state = inventory.state("n1")
    assert state is not None and state.free == (0, 0) and state.overcommitted == 2


def test_pods_of_other_vendors_do_not_take_these_cards() -> None:
    inventory = inventory_of(vendor_node("n1"), pods=(pod("gpu", "n1", {"nvidia.com/gpu": "1"}),))
    assert free(inventory)[0] == (4, 4)


def test_pools_follow_relabelled_nodes() -> None:
    inventory = inventory_of(vendor_node("n1"))
    assert inventory.pools() == [("huawei", "Ascend910B")]
    inventory.upsert_node(vendor_node("n1", vendor="nvidia"))
    assert inventory.pools() == [("nvidia", "H100")]
    assert list(inventory.pool("huawei", "Ascend910B")) == []


NODES = [f"n{i}" for i in range(3)]
events = st.lists(
    st.one_of(
        st.tuples(st.just("node"), st.sampled_from(NODES), st.sampled_from([4, 8]), st.booleans()),
        st.tuples(st.just("drop-node"), st.sampled_from(NODES)),
        st.tuples(
            st.just("pod"),
            st.integers(0, 5),
            st.sampled_from([*NODES, None]),
            st.sampled_from([1, 2, 4, 8]),
            st.sampled_from(["Running", "Succeeded", "Pending"]),
            st.sampled_from([None, "0", "1", "0+1"]),
        ),
        st.tuples(st.just("drop-pod"), st.integers(0, 5)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_incremental_updates_equal_a_rebuild_from_the_final_objects(script: list[tuple[Any, ...]]) -> None:
    live = Inventory()
    nodes: dict[str, dict[str, Any]] = {}
    pods: dict[str, dict[str, Any]] = {}
    for event in script:
        if event[0] == "node":
            _, name, cards, cordoned = event
            nodes[name] = vendor_node(name, cards=cards, unschedulable=cordoned)
            live.upsert_node(nodes[name])
        elif event[0] == "drop-node":
            nodes.pop(event[1], None)
            live.remove_node(event[1])
        elif event[0] == "pod":
            _, index, where, cards, phase, domains = event
            annotations = {"suanli.io/link-domain": domains} if domains else {}
            pods[f"p{index}"] = pod(
                f"p{index}", where, {ASCEND: str(cards), "cpu": "1"}, phase=phase, annotations=annotations
            )
            live.upsert_pod(pods[f"p{index}"])
        else:
            pods.pop(f"p{event[1]}", None)
            live.remove_pod("busy", f"p{event[1]}")
    rebuilt = inventory_of(*nodes.values(), pods=tuple(pods.values()))
    assert {n: live.state(n) for n in nodes} == {n: rebuilt.state(n) for n in nodes}
    pools = {*live.pools(), *rebuilt.pools()}
    assert {p: dict(live.available(*p)) for p in pools} == {p: dict(rebuilt.available(*p)) for p in pools}
    for name in nodes:
        state = live.state(name)
        assert state is not None
        assert all(0 <= f <= size for f, size in zip(state.free, state.node.link_domains, strict=True))


def test_heartbeats_change_nothing_and_real_changes_are_seen() -> None:
    item = vendor_node("n1")
    inventory = inventory_of(item)
    before = inventory.generation
    inventory.upsert_node(vendor_node("n1"))  # same content, new dict: a kubelet heartbeat
    assert inventory.generation == before
    inventory.upsert_node(vendor_node("n1", unschedulable=True))
    state = inventory.state("n1")
    assert inventory.generation > before and state is not None and not state.node.schedulable


def test_quantities_read_through_the_cache_equal_a_fresh_parse_and_errors_are_not_remembered() -> None:
    from decimal import Decimal

    from suanli.inventory.quantity import QuantityError, bytes_of, cpu_millis, parse_quantity

    for text in ("1", "500m", "1.5", "0.0001", "16Gi", "4G", "8", "1e3", " 2 ", "100n"):
        for _ in range(2):  # the second read comes from the cache
            assert cpu_millis(text) == int((parse_quantity(text) * 1000).to_integral_value(rounding="ROUND_CEILING"))
            assert bytes_of(text) == int(parse_quantity(text).to_integral_value(rounding="ROUND_CEILING"))
    assert cpu_millis(2) == 2000 and bytes_of(1.5) == 2 and parse_quantity("1Ki") == Decimal(1024)
    for bad in ("abc", "-1", "1Xi", "", True, [1]):
        for _ in range(2):  # an error is raised every time, never cached as a value
            with pytest.raises(QuantityError):
                cpu_millis(bad)
            with pytest.raises(QuantityError):
                bytes_of(bad)
