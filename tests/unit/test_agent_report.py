"""The agent's pure core on real probe reports of the fixture trees: labels, taint and AcceleratorNode.

Every report comes from the compiled probe scanning tests/fixtures/sysfs with the fake vendor libraries
of tests/kernels, so the mapping is tested on the JSON the agent really receives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from suanli import probe as kernels
from suanli.agent import (
    OWNED_LABELS,
    TAINT,
    NodeReport,
    ProbeFailedError,
    accelerator_node,
    build_report,
    desired_labels,
    is_label_value,
    label_patch,
    report_status,
    taint_update,
    wants_taint,
)
from suanli.agent.labels import format_link_domains
from suanli.agent.status import status_patch, validated
from suanli.api import ConditionStatus, DeviceHealth, Vendor, parse_node

from .test_agent_support import FIXTURES, fixture_bdfs

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VENDOR_IDS = {"h100-8": "0x10de", "ascend910b-8": "0x19e5", "dcu-8": "0x1d94"}


def probe_tree(tree: str, libs: Path, driver: pytest.MonkeyPatch) -> NodeReport:
    """Probe a fixture tree; the DCMI and ROCm SMI fakes are told which cards their driver sees."""
    if tree in ("ascend910b-8", "dcu-8"):
        driver.setenv("SUANLI_FAKE_BDFS", ",".join(fixture_bdfs(tree, VENDOR_IDS[tree])))
    return build_report(kernels.probe(str(FIXTURES / tree), lib_path=str(libs)))


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ("h100-8", {"vendor": "nvidia", "model": "H100", "memory-mib": "81920", "link-domains": "1x8"}),
        ("ascend910b-8", {"vendor": "huawei", "model": "Ascend910B", "memory-mib": "65536", "link-domains": "1x8"}),
        ("dcu-8", {"vendor": "hygon", "model": "DCU-K100-AI", "memory-mib": "65536", "link-domains": "2x4"}),
    ],
)
def test_healthy_node_labels(
    tree: str, expected: dict[str, str], libs: dict[str, Path], driver: pytest.MonkeyPatch
) -> None:
    report = probe_tree(tree, libs["healthy"], driver)
    labels = desired_labels(report, None)
    want = {f"suanli.io/accelerator.{k}": v for k, v in expected.items()}
    want |= {"suanli.io/accelerator.count": "8", "suanli.io/accelerator.healthy": "8"}
    assert labels == want, "throughput keys are absent (left alone) when nothing was measured"
    assert set(labels) <= set(OWNED_LABELS)
    assert all(is_label_value(v) for v in labels.values() if v is not None)
    assert not wants_taint(report)


@pytest.mark.parametrize("tree", ["h100-8", "ascend910b-8", "dcu-8"])
def test_healthy_node_status_validates(tree: str, libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    report = probe_tree(tree, libs["healthy"], driver)
    status = report_status(report, None, "measurement disabled (--bench none)", None, False, NOW)
    obj = accelerator_node(f"node-{tree}", "uid-1", report.versions)
    stored = validated(f"node-{tree}", obj, status)
    assert stored.metadata["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": f"node-{tree}", "uid": "uid-1"}
    ]
    assert stored.spec.node_name == f"node-{tree}"
    s = stored.status
    assert (s.total_devices, s.healthy_devices) == (8, 8)
    assert s.vendor == report.vendor and s.model == report.model
    assert [d.index for d in s.devices] == list(range(8))
    assert [d.bus_id for d in s.devices] == fixture_bdfs(tree, VENDOR_IDS[tree])
    assert {d.health for d in s.devices} == {DeviceHealth.HEALTHY}
    assert all(d.memory_mib and d.link_domain for d in s.devices)
    assert s.last_probe_time == NOW and s.probe_version == "0.1.0"
    conditions = {c.type: (c.status, c.reason) for c in s.conditions}
    assert conditions == {
        "Probed": (ConditionStatus.TRUE, "ProbeSucceeded"),
        "Healthy": (ConditionStatus.TRUE, "AllHealthy"),
        "Benchmarked": (ConditionStatus.UNKNOWN, "NotMeasured"),
    }
    assert s.errors == []
    # What is sent clears every status field the new status leaves unset.
    patch = status_patch(s)["status"]
    assert set(patch) == {"vendor", "model", "devices", "totalDevices", "healthyDevices", "probeVersion",
                          "lastProbeTime", "errors", "conditions"}
    assert patch["lastProbeTime"] == "2026-11-25T12:00:00Z"


def test_link_domains_of_dcu_follow_xgmi_hives(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    report = probe_tree("dcu-8", libs["healthy"], driver)
    hives = {c.link_domain for c in report.cards}
    assert hives == {"xgmi-0", "xgmi-1"}
    assert report.link_domains == (4, 4)


def test_cpu_only_node_loses_every_label(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    report = probe_tree("cpu-only", libs["healthy"], driver)
    assert report.vendor is None and report.count == 0
    labels = desired_labels(report, None)
    assert labels == dict.fromkeys(OWNED_LABELS)
    current = {"suanli.io/accelerator.count": "8", "suanli.io/rack": "r1", "kubernetes.io/hostname": "n"}
    assert label_patch(current, labels) == {"suanli.io/accelerator.count": None}, (
        "only our keys, and only those present, are removed; suanli.io/rack is the administrator's"
    )
    assert not wants_taint(report)
    status = report_status(report, None, "no accelerator to measure", None, False, NOW)
    assert (status.total_devices, status.devices, status.vendor) == (0, [], None)
    healthy = next(c for c in status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.UNKNOWN, "NoAccelerators")


@pytest.mark.parametrize(("variant", "library"), [("empty", "nvml missing"), ("init_fails", "nvml error")])
def test_unreadable_health_is_unknown_and_counts_as_usable(
    variant: str, library: str, libs: dict[str, Path], driver: pytest.MonkeyPatch
) -> None:
    """No management library, or one that fails to initialise: the probe failed, not the cards."""
    report = probe_tree("h100-8", libs[variant], driver)
    assert {c.health for c in report.cards} == {DeviceHealth.UNKNOWN}
    labels = desired_labels(report, None)
    assert labels["suanli.io/accelerator.healthy"] == "8"
    assert labels["suanli.io/accelerator.count"] == "8"
    assert labels["suanli.io/accelerator.model"] == "H100", "the model comes from the PCI id, no library needed"
    # Facts only the library knows are removed, so the inventory uses the model's datasheet values.
    assert labels["suanli.io/accelerator.memory-mib"] is None
    assert labels["suanli.io/accelerator.link-domains"] is None
    assert not wants_taint(report)
    status = report_status(report, None, "", None, False, NOW)
    healthy = next(c for c in status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.UNKNOWN, "HealthUnknown")
    assert library in healthy.message and "counted as usable" in healthy.message
    assert status.healthy_devices == 0 and status.total_devices == 8
    assert any(e.startswith(library) for e in status.errors)


def test_one_failed_card_lowers_healthy_and_keeps_the_node_open(
    libs: dict[str, Path], driver: pytest.MonkeyPatch
) -> None:
    driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:3a:00.0")
    report = probe_tree("h100-8", libs["healthy"], driver)
    labels = desired_labels(report, None)
    assert labels["suanli.io/accelerator.healthy"] == "7"
    assert labels["suanli.io/accelerator.count"] == "8"
    # The lost GPU answers no NVLink query, leaving domains of 7 and 1, written label-safe as "7_1".
    assert labels["suanli.io/accelerator.link-domains"] == "7_1"
    assert report.link_domains == (7, 1)
    assert not wants_taint(report)
    status = report_status(report, None, "", None, False, NOW)
    lost = next(d for d in status.devices if d.bus_id == "0000:3a:00.0")
    assert lost.health == DeviceHealth.UNHEALTHY and lost.index == 2
    assert status.healthy_devices == 7
    assert any("0000:3a:00.0" in e and "GPU is lost" in e for e in status.errors)
    assert not any("uneven link domains" in e for e in status.errors), "uneven domains are labelled now"
    healthy = next(c for c in status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.FALSE, "CardsUnhealthy")


def test_ecc_degraded_and_dcmi_alarm_count_as_unhealthy(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    driver.setenv("SUANLI_FAKE_ECC_BDF", "0000:9a:00.0")
    nvidia = probe_tree("h100-8", libs["healthy"], driver)
    assert desired_labels(nvidia, None)["suanli.io/accelerator.healthy"] == "7"
    driver.delenv("SUANLI_FAKE_ECC_BDF")
    driver.setenv("SUANLI_FAKE_ALARM_BDF", "0000:41:00.0")
    driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:61:00.0")
    ascend = probe_tree("ascend910b-8", libs["healthy"], driver)
    assert desired_labels(ascend, None)["suanli.io/accelerator.healthy"] == "6"
    assert [c.bus_id for c in ascend.cards if c.health == DeviceHealth.UNHEALTHY] == ["0000:41:00.0", "0000:61:00.0"]


def test_missing_sysfs_is_a_failed_probe_not_a_cpu_node(libs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ProbeFailedError, match="cannot read"):
        build_report(kernels.probe(str(tmp_path / "no-sysfs"), lib_path=str(libs["empty"])))


def test_taint_update_touches_only_ours() -> None:
    theirs = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    added = taint_update(theirs, wanted=True)
    assert added == [*theirs, TAINT]
    assert taint_update(added or [], wanted=True) is None, "already tainted: no write"
    assert taint_update(added or [], wanted=False) == theirs
    assert taint_update(theirs, wanted=False) is None
    stale = [{"key": TAINT["key"], "value": "true", "effect": "NoExecute"}]
    assert taint_update(stale, wanted=True) == [TAINT], "a foreign effect on our key is corrected"


def test_label_patch_is_minimal() -> None:
    desired = {"suanli.io/accelerator.count": "8", "suanli.io/accelerator.memory-mib": None}
    assert label_patch({"suanli.io/accelerator.count": "8"}, desired) == {}
    assert label_patch({"suanli.io/accelerator.count": "7", "suanli.io/accelerator.memory-mib": "1"}, desired) == {
        "suanli.io/accelerator.count": "8",
        "suanli.io/accelerator.memory-mib": None,
    }


@pytest.mark.parametrize(
    ("value", "ok"),
    [("8", True), ("DCU-K100-AI", True), ("2x4", True), ("4+4", False), ("1600.5", True), ("", True),
     ("-bad", False), ("bad.", False), ("a" * 63, True), ("a" * 64, False), ("has space", False)],
)
def test_label_value_syntax(value: str, ok: bool) -> None:
    assert is_label_value(value) is ok


def test_uneven_link_domains_use_the_label_safe_separator() -> None:
    """Kubernetes label values forbid '+', so uneven domains are joined by '_' (read by the inventory too)."""
    assert format_link_domains((4, 4)) == "2x4"
    assert format_link_domains((8,)) == "1x8"
    assert format_link_domains((7, 1)) == "7_1" and is_label_value("7_1")
    assert format_link_domains(()) is None
    assert not is_label_value("7+1")


def test_model_outside_the_table_stays_label_safe(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    raw = kernels.probe(str(FIXTURES / "dcu-8"), lib_path=str(libs["empty"])).raw
    for d in raw["devices"]:
        d["model"] = "unknown hygon 0x6320"
    report = build_report(kernels.parse_probe(raw))
    assert report.model is None, "no canonical model: the label is removed, not guessed"
    assert desired_labels(report, None)["suanli.io/accelerator.model"] is None
    assert {c.model for c in report.cards} == {"unknown-hygon-0x6320"}
    status = report_status(report, None, "", None, False, NOW)
    parse_node({"spec": {"nodeName": "n"}, "status": status.to_wire()})


def test_cards_of_two_vendors_describe_the_majority(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    raw = kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(libs["empty"])).raw
    raw["devices"][0] |= {"vendor": "huawei", "vendor_id": "0x19e5", "model": "Ascend 910B"}
    report = build_report(kernels.parse_probe(raw))
    assert report.vendor == Vendor.NVIDIA and report.count == 7
    assert any("several vendors" in e for e in report.errors)
    assert desired_labels(report, None)["suanli.io/accelerator.count"] == "7"
