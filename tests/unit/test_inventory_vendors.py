"""Discovery against nodes shaped as the vendors' own labellers and device plugins write them.

Every node comes from tests/fixtures/vendors/nodes.json, whose ``source`` field cites the vendor document or file
the shape is taken from. Only whole, exclusive cards that the kubelet allocates may count for gang placement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from suanli.inventory import Inventory
from suanli.inventory.deviceplugins import hami_register_keys, partition_resources, refusal
from tests.unit.placement_helpers import node

FIXTURES = json.loads((Path(__file__).parent.parent / "fixtures" / "vendors" / "nodes.json").read_text())


def fixture_node(key: str) -> dict[str, Any]:
    entry = FIXTURES[key]
    assert entry["source"], f"fixture {key} must cite its source"
    item = node(key, entry["labels"], entry["resources"])
    item["metadata"]["annotations"] = dict(entry.get("annotations") or {})
    return item


def inventory_of(key: str) -> Inventory:
    inventory = Inventory()
    inventory.upsert_node(fixture_node(key))
    return inventory


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("gfd-a100", ("nvidia", "A100", "nvidia.com/gpu", 1, 39538)),
        # mixed MIG: the GPUs left whole are still nvidia.com/gpu; the mig-* slices are never cards.
        ("gfd-mig-mixed-partly", ("nvidia", "A100", "nvidia.com/gpu", 4, None)),  # no memory label, no datasheet entry
        # Released MindCluster labels: chip name, memory and servertype are read (not "Ascend910, 32 GiB").
        ("mindcluster-910b3", ("huawei", "Ascend910B", "huawei.com/Ascend910", 8, 65536)),
        ("mindcluster-910b4-32g", ("huawei", "Ascend910B", "huawei.com/Ascend910", 8, 32768)),
        ("mindcluster-910a-servertype-only", ("huawei", "Ascend910", "huawei.com/Ascend910", 8, 32768)),
        ("mindcluster-a3-superpod", ("huawei", "Ascend910C", "huawei.com/Ascend910", 16, 65536)),
        ("mindcluster-npu", ("huawei", "Ascend910B", "huawei.com/npu", 8, 65536)),
        ("hygon-hcu-standard", ("hygon", "DCU-K100-AI", "hygon.com/hcu", 3, 65536)),
        ("mindcluster-910prob", ("huawei", "Ascend910", "huawei.com/Ascend910", 8, 32768)),
        ("mindcluster-910b-infer-card", ("huawei", "Ascend910B", "huawei.com/Ascend910", 4, 32768)),
    ],
)
def test_whole_card_nodes_are_read_from_vendor_labels(key: str, expected: tuple[Any, ...]) -> None:
    inventory = inventory_of(key)
    assert inventory.skipped() == {}
    found = inventory.get(key)
    assert found is not None
    assert (found.vendor, found.model, found.resource, found.cards, found.memory_mib) == expected


@pytest.mark.parametrize(
    ("key", "vendor", "fragments"),
    [
        ("gfd-mig-single", "nvidia", ("MIG slices", "A100-SXM4-40GB-MIG-1g.5gb")),
        ("gfd-mig-mixed-all", "nvidia", ("only slices", "nvidia.com/mig-1g.10gb")),
        ("nvidia-time-slicing", "nvidia", ("time-slicing", "replicas 10")),
        ("nvidia-time-slicing-renamed", "nvidia", ("only slices", "nvidia.com/gpu.shared")),
        ("nvidia-mps", "nvidia", ("sharing-strategy mps",)),
        ("hami-nvidia", "nvidia", ("HAMi", "hami.io/node-nvidia-register")),
        ("hami-ascend-910b4-1", "huawei", ("HAMi", "hami.io/node-register-Ascend910B4-1")),
        ("hami-ascend-resource-only", "huawei", ("HAMi", "resource huawei.com/Ascend910B3")),
        ("mindcluster-volcano-mode", "huawei", ("Volcano mode", "-volcanoType=false")),
        ("mindcluster-soft-share", "huawei", ("soft partitioning", "chip1softsharedev")),
        ("hygon-hcu-mig", "hygon", ("only slices", "hygon.com/hcu-mig-2g-15gb")),
        ("hygon-hcu-hami", "hygon", ("HAMi", "hami.io/node-hcu-register")),
        ("hami-dcu", "hygon", ("HAMi", "hami.io/node-dcu-register")),
        ("ascend-nfd-class-no-plugin", "huawei", ("is the device plugin running",)),
    ],
)
def test_shared_partitioned_or_foreign_scheduled_capacity_is_refused(
    key: str, vendor: str, fragments: tuple[str, ...]
) -> None:
    inventory = inventory_of(key)
    assert inventory.get(key) is None, "slices, shares or HAMi units must never count as whole cards"
    reason = inventory.skipped()[key]
    for fragment in fragments:
        assert fragment in reason, reason
    (skipped,) = inventory.skipped_nodes(vendor)
    assert skipped.name == key and skipped.vendor == vendor
    assert inventory.skipped_nodes("none-such") == []


@pytest.mark.parametrize(
    "key", ["kunpeng-cpu-nfd-class", "kunpeng-cpu-nfd-vendor", "hygon-cpu-nfd-vendor", "generic-accelerator-label"]
)
def test_cpu_servers_and_generic_labels_are_not_accelerator_nodes(key: str) -> None:
    inventory = inventory_of(key)
    assert (len(inventory), inventory.skipped()) == (0, {}), "not ours: neither tracked nor reported as skipped"


def test_generic_accelerator_label_does_not_make_an_nvidia_node_huawei() -> None:
    inventory = Inventory()
    inventory.upsert_node(node("g", {"accelerator": "nvidia-tesla-p100"}, {"nvidia.com/gpu": "2"}))
    found = inventory.get("g")
    assert found is not None and found.vendor == "nvidia"


def test_unknown_device_plugin_mode_names_the_label() -> None:
    inventory = Inventory()
    inventory.upsert_node(node("x", {"suanli.io/device-plugin": "magic"}, {"nvidia.com/gpu": "8"}))
    assert "suanli.io/device-plugin='magic'" in inventory.skipped()["x"]
    assert refusal("nvidia", "nvidia.com/gpu", {"suanli.io/device-plugin": "kubelet"}, {}) is None
    assert "label suanli.io/device-plugin=hami" in (refusal("nvidia", "nvidia.com/gpu",
                                                            {"suanli.io/device-plugin": "hami"}, {}) or "")


def test_hami_handshake_churn_is_not_a_node_change_but_registration_is() -> None:
    inventory = Inventory()
    plain = fixture_node("gfd-a100")
    inventory.upsert_node(plain)
    generation = inventory.generation
    churn = json.loads(json.dumps(plain))
    churn["metadata"]["annotations"] = {"hami.io/node-handshake": "Requesting_2026-01-28 11:25:28"}
    inventory.upsert_node(churn)
    assert inventory.generation == generation, "a handshake timestamp must not re-run discovery"
    registered = json.loads(json.dumps(churn))
    registered["metadata"]["annotations"]["hami.io/node-nvidia-register"] = "x"
    inventory.upsert_node(registered)
    assert inventory.get("gfd-a100") is None and "HAMi" in inventory.skipped()["gfd-a100"]


def test_helpers_read_keys_only() -> None:
    assert hami_register_keys({"hami.io/node-register-Ascend910B3": 1, "hami.io/node-handshake": 2, "x": 3}) == (
        "hami.io/node-register-Ascend910B3",
    )
    assert partition_resources(["nvidia.com/gpu", "nvidia.com/mig-2g.20gb", "huawei.com/Ascend910-4c",
                                "huawei.com/Ascend910"]) == ["huawei.com/Ascend910-4c", "nvidia.com/mig-2g.20gb"]


def test_a_pending_job_can_quote_why_its_vendors_nodes_were_left_out() -> None:
    inventory = Inventory()
    for key in ("hami-ascend-910b4-1", "mindcluster-volcano-mode", "mindcluster-soft-share", "mindcluster-npu",
                "gfd-mig-single"):
        inventory.upsert_node(fixture_node(key))
    summary = inventory.skipped_summary(["huawei"], limit=2)
    assert summary.startswith("3 node(s) of these vendors were left out: hami-ascend-910b4-1 is managed by HAMi")
    assert "mindcluster-soft-share label" in summary and summary.endswith("(and 1 more)")
    assert "gfd-mig-single" not in summary, "only the job's vendors"
    assert inventory.skipped_summary(["hygon"]) == ""
