"""Discovery reads every vendor's label convention into one normalised node and skips what it cannot trust."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.inventory import AcceleratorNode, Inventory, InventorySettings, canonical_model
from tests.unit.placement_helpers import ASCEND_LEGACY_910B, GFD_H100, HYGON_HCU_K100, node


def discovered(item: dict[str, Any], settings: InventorySettings | None = None) -> AcceleratorNode:
    inventory = Inventory(settings)
    inventory.upsert_node(item)
    assert inventory.skipped() == {}, inventory.skipped()
    found = inventory.get(item["metadata"]["name"])
    assert found is not None
    return found


CONVENTIONS = [
    pytest.param(
        GFD_H100,
        {"nvidia.com/gpu": "8"},
        ("nvidia", "H100", "nvidia.com/gpu", 8, 81559, (8,)),
        id="nvidia-gfd",
    ),
    pytest.param(
        {"feature.node.kubernetes.io/pci-0302_10de.present": "true"},
        {"nvidia.com/gpu": "4"},
        ("nvidia", "unknown", "nvidia.com/gpu", 4, None, (4,)),
        id="nvidia-nfd-only",
    ),
    pytest.param(
        {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.memory": "81920"},
        {"nvidia.com/gpu": "8"},
        ("nvidia", "A100", "nvidia.com/gpu", 8, 81920, (8,)),
        id="nvidia-a100",
    ),
    pytest.param(
        ASCEND_LEGACY_910B,
        {"huawei.com/Ascend910": "8"},
        ("huawei", "Ascend910B", "huawei.com/Ascend910", 8, 65536, (4, 4)),
        id="ascend-legacy-910b",
    ),
    pytest.param(
        {"accelerator": "huawei-Ascend910", "accelerator-type": "module"},
        {"huawei.com/Ascend910": "8"},
        ("huawei", "Ascend910", "huawei.com/Ascend910", 8, 32768, (4, 4)),
        id="ascend-legacy-910a",
    ),
    pytest.param(
        {
            "huawei.com/npu.chip.name": "910B3",
            "huawei.com/npu.chip.memory": "64G",
            "huawei.com/npu.server.type": "Ascend910B-20",
            "huawei.com/topotree.serverid": "s1",
        },
        {"huawei.com/npu": "8"},
        ("huawei", "Ascend910B", "huawei.com/npu", 8, 65536, (4, 4)),
        id="ascend-npu-labels",
    ),
    pytest.param(
        {"accelerator": "huawei-Ascend910", "accelerator-type": "module-a3-16-super-pod"},
        {"huawei.com/Ascend910": "16"},
        ("huawei", "Ascend910C", "huawei.com/Ascend910", 16, 65536, (16,)),
        id="ascend-a3-910c",
    ),
    pytest.param(
        {"accelerator": "huawei-Ascend910"},
        {"huawei.com/Ascend910": "8"},
        ("huawei", "Ascend910", "huawei.com/Ascend910", 8, 32768, (4, 4)),
        id="ascend-family-only",
    ),
    pytest.param(
        HYGON_HCU_K100,
        {"hygon.com/hcu": "8"},
        ("hygon", "DCU-K100-AI", "hygon.com/hcu", 8, 65536, (8,)),
        id="hygon-hcu",
    ),
    pytest.param(
        {"hygon.com/dcu": "true"},
        {"hygon.com/dcu": "4"},
        ("hygon", "unknown", "hygon.com/dcu", 4, None, (4,)),
        id="hygon-dcu-v2",
    ),
    pytest.param(
        {
            **GFD_H100,
            "suanli.io/accelerator.vendor": "nvidia",
            "suanli.io/accelerator.model": "H200",
            "suanli.io/accelerator.memory-mib": "143771",
            "suanli.io/accelerator.link-domains": "2x4",
            "suanli.io/accelerator.count": "8",
        },
        {"nvidia.com/gpu": "8"},
        ("nvidia", "H200", "nvidia.com/gpu", 8, 143771, (4, 4)),
        id="suanli-labels-win",
    ),
    pytest.param(
        {**GFD_H100, "suanli.io/accelerator.link-domains": "7_1"},
        {"nvidia.com/gpu": "8"},
        ("nvidia", "H100", "nvidia.com/gpu", 8, 81559, (7, 1)),
        id="uneven-link-domains-label-safe",
    ),
]


@pytest.mark.parametrize(("labels", "resources", "expected"), CONVENTIONS)
def test_each_convention_normalises(
    labels: dict[str, str], resources: dict[str, str], expected: tuple[Any, ...]
) -> None:
    found = discovered(node("n1", labels, resources))
    assert (
        found.vendor,
        found.model,
        found.resource,
        found.cards,
        found.memory_mib,
        found.link_domains,
    ) == expected
    assert found.usable_cards == found.cards
    assert found.schedulable


@pytest.mark.parametrize(
    ("vendor", "raw", "model"),
    [
        ("nvidia", "NVIDIA-H100-80GB-HBM3", "H100"),
        ("nvidia", "NVIDIA-H200", "H200"),
        ("nvidia", "Tesla-V100-SXM2-32GB", "V100"),
        ("nvidia", "NVIDIA-GeForce-RTX-4090", "RTX4090"),
        ("nvidia", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "A100"),
        ("nvidia", "NVIDIA-H100-80GB-HBM3-SHARED", "H100"),
        ("huawei", "module-910b-8", "Ascend910B"),
        ("huawei", "card-910b-2", "Ascend910B"),
        ("huawei", "module-a3-16", "Ascend910C"),
        ("huawei", "Ascend910_9392", "Ascend910C"),
        ("huawei", "910B4", "Ascend910B"),
        ("huawei", "Ascend310P3", "Ascend310P"),
        ("huawei", "half", "Ascend910"),
        ("hygon", "K100_AI", "DCU-K100-AI"),
        ("hygon", "Z100L", "DCU-Z100L"),
        ("hygon", "Hygon DCU Z100", "DCU-Z100"),
    ],
)
def test_model_names_normalise_and_canonical_names_are_fixed_points(
    vendor: str, raw: str, model: str
) -> None:
    assert canonical_model(vendor, raw) == model
    assert canonical_model(vendor, model) == model


def test_agent_health_and_throughput_labels() -> None:
    found = discovered(
        node(
            "n1",
            {
                **ASCEND_LEGACY_910B,
                "suanli.io/accelerator.healthy": "7",
                "suanli.io/accelerator.membw-gbs": "1600.5",
                "suanli.io/accelerator.fma-tflops": "313",
            },
            {"huawei.com/Ascend910": "8"},
        )
    )
    assert (found.usable_cards, found.membw_gbs, found.fma_tflops) == (7, 1600.5, 313.0)


def test_allocatable_below_capacity_means_fewer_usable_cards() -> None:
    item = node("n1", GFD_H100, {"nvidia.com/gpu": "8"})
    item["status"]["allocatable"]["nvidia.com/gpu"] = "6"  # the device plugin marked two unhealthy
    assert discovered(item).usable_cards == 6


@pytest.mark.parametrize(
    ("labels", "rack"),
    [
        ({"suanli.io/rack": "ours", "huawei.com/topotree.rackid": "theirs"}, "ours"),
        ({"huawei.com/topotree.rackid": "rack-7"}, "rack-7"),
        ({"volcano.sh/hypernode": "hn-2", "volcano.sh/tor": "tor-1"}, "hn-2"),
        ({"volcano.sh/tor": "tor-1"}, "tor-1"),
        ({}, ""),
    ],
)
def test_rack_label_precedence(labels: dict[str, str], rack: str) -> None:
    found = discovered(node("n1", {**ASCEND_LEGACY_910B, **labels}, {"huawei.com/Ascend910": "8"}))
    assert found.rack == rack
    # An unlabelled node is a rack of its own: never assumed to share a switch with another.
    assert found.rack_id[2] == (rack or "\0n1")


def test_zone_and_region_old_and_new_keys_and_custom_settings() -> None:
    old = discovered(
        node(
            "n1",
            {
                **GFD_H100,
                "failure-domain.beta.kubernetes.io/zone": "z-old",
                "failure-domain.beta.kubernetes.io/region": "r-old",
            },
            {"nvidia.com/gpu": "8"},
        )
    )
    assert (old.zone, old.region) == ("z-old", "r-old")
    settings = InventorySettings(rack_labels=("example.com/pod",))
    custom = discovered(
        node(
            "n2", {**GFD_H100, "example.com/pod": "p1", "suanli.io/rack": "ignored"}, {"nvidia.com/gpu": "8"}
        ),
        settings,
    )
    assert custom.rack == "p1"


@pytest.mark.parametrize(
    ("spec", "reason", "taints"),
    [
        ({"unschedulable": True}, "cordoned", ()),
        (
            {"taints": [{"key": "maintenance", "value": "yes", "effect": "NoSchedule"}]},
            "",
            (("maintenance", "yes", "NoSchedule"),),
        ),
        (
            {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
            "",
            (("node.kubernetes.io/unreachable", "", "NoExecute"),),
        ),
        ({"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}, "", ()),
        ({"taints": [{"key": "maintenance", "effect": "PreferNoSchedule"}]}, "", ()),
    ],
)
def test_cordons_and_taints(spec: dict[str, Any], reason: str, taints: tuple[tuple[str, str, str], ...]) -> None:
    """Cordoned or NotReady nodes are out for everyone; blocking taints are recorded for the job's tolerations."""
    item = node("n1", GFD_H100, {"nvidia.com/gpu": "8"})
    item["spec"].update(spec)
    found = discovered(item)
    assert found.schedulable is (reason == "") and found.why_unschedulable == reason
    assert found.taints == taints


def test_not_ready_and_configurable_tolerations() -> None:
    assert (
        discovered(node("n1", GFD_H100, {"nvidia.com/gpu": "8"}, ready="False")).why_unschedulable
        == "not Ready"
    )
    tainted = node(
        "n2",
        GFD_H100,
        {"nvidia.com/gpu": "8"},
        taints=[{"key": "dedicated", "value": "training", "effect": "NoSchedule"}],
    )
    assert discovered(tainted).taints == (("dedicated", "training", "NoSchedule"),)
    settings = InventorySettings(tolerated_taints=frozenset({"dedicated"}))
    assert discovered(tainted, settings).taints == (), "taints the operator is told to tolerate are not blocking"
    assert discovered(tainted, settings).tolerated_taint_keys == ("dedicated",), "... but kept for the pods"
    assert discovered(tainted).tolerated_taint_keys == ()
    soft = node("n3", GFD_H100, {"nvidia.com/gpu": "8"}, taints=[
        {"key": "nvidia.com/gpu", "effect": "PreferNoSchedule"},
        {"key": "hygon.com/dcu", "effect": "NoExecute"}, {"key": "hygon.com/dcu", "effect": "NoSchedule"},
    ])
    assert discovered(soft).tolerated_taint_keys == ("hygon.com/dcu",), "blocking effects only, each key once"


def test_a_node_without_a_ready_condition_is_not_placeable() -> None:
    """The job workers count such a node lost (controller/cache.ready): placement must not put gangs there."""
    bare = node("n1", GFD_H100, {"nvidia.com/gpu": "8"})
    bare["status"]["conditions"] = [{"type": "MemoryPressure", "status": "False"}]
    found = discovered(bare)
    assert not found.schedulable and found.why_unschedulable == "not Ready (no Ready condition)"
    del bare["status"]["conditions"]
    assert discovered(bare).why_unschedulable == "not Ready (no Ready condition)"
    assert discovered(bare, InventorySettings(require_ready=False)).schedulable, "unless Ready is not required"


@pytest.mark.parametrize(
    ("labels", "resources", "fragment"),
    [
        (
            {"suanli.io/accelerator.count": "eight"},
            {"nvidia.com/gpu": "8"},
            "suanli.io/accelerator.count='eight'",
        ),
        ({"suanli.io/accelerator.count": "4"}, {"nvidia.com/gpu": "8"}, "disagrees with capacity"),
        (
            {"suanli.io/accelerator.vendor": "amd"},
            {"nvidia.com/gpu": "8"},
            "not one of nvidia, huawei, hygon",
        ),
        (
            {"suanli.io/accelerator.vendor": "nvidia"},
            {"huawei.com/Ascend910": "8"},
            "conflicts with resource",
        ),
        ({}, {"nvidia.com/gpu": "8", "huawei.com/Ascend910": "8"}, "several vendors"),
        ({"suanli.io/accelerator.link-domains": "3x4"}, {"nvidia.com/gpu": "8"}, "describes 12 cards"),
        ({"suanli.io/accelerator.link-domains": "ring"}, {"nvidia.com/gpu": "8"}, "neither"),
        ({"suanli.io/accelerator.healthy": "9"}, {"nvidia.com/gpu": "8"}, "exceeds"),
        (
            {"suanli.io/accelerator.membw-gbs": "fast"},
            {"nvidia.com/gpu": "8"},
            "membw-gbs='fast' is not a number",
        ),
        ({"suanli.io/accelerator.fma-tflops": "nan"}, {"nvidia.com/gpu": "8"}, "finite"),
        ({"hygon.com/hcu": "true", "hygon.com/hcu.vram": "lots"}, {"hygon.com/hcu": "8"}, "hcu.vram='lots'"),
        ({}, {"nvidia.com/gpu": "eight"}, "resource nvidia.com/gpu"),
        ({}, {"nvidia.com/gpu": "1.5"}, "not a whole number"),
        ({"accelerator": "huawei-Ascend910"}, {}, "device plugin"),
        ({"nvidia.com/gpu.present": "true", "hygon.com/hcu": "true"}, {}, "several vendors"),
    ],
)
def test_malformed_or_conflicting_nodes_are_skipped_with_a_reason(
    labels: dict[str, str], resources: dict[str, str], fragment: str
) -> None:
    inventory = Inventory()
    inventory.upsert_node(node("bad", labels, resources))
    assert inventory.get("bad") is None
    assert fragment in inventory.skipped()["bad"]


def test_bad_cpu_quantity_skips_and_a_fixed_node_comes_back() -> None:
    inventory = Inventory()
    inventory.upsert_node(node("n1", GFD_H100, {"nvidia.com/gpu": "8"}, cpu="lots"))
    assert "status.allocatable" in inventory.skipped()["n1"]
    inventory.upsert_node(node("n1", GFD_H100, {"nvidia.com/gpu": "8"}))
    assert inventory.skipped() == {} and inventory.get("n1") is not None


def test_cpu_only_nodes_are_neither_tracked_nor_reported() -> None:
    inventory = Inventory()
    inventory.upsert_node(node("cpu-1", {"kubernetes.io/arch": "amd64"}, {}))
    assert (len(inventory), inventory.skipped()) == (0, {})


def test_node_without_a_name_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match=r"metadata\.name"):
        Inventory().upsert_node({"metadata": {}})
