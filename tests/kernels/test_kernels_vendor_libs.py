"""Vendor management libraries loaded at run time: healthy, failing, incomplete and corrupt fakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kernels_support import FIXTURES, fixture_bdfs
from schema_check import validate

from suanli import probe as kprobe


def _probe(tree: str, libs: Path) -> kprobe.ProbeReport:
    report = kprobe.probe(str(FIXTURES / tree), lib_path=str(libs))
    assert validate(report.raw) == []
    return report


def test_nvml_fills_memory_driver_and_nvswitch_domain(
    fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch
) -> None:
    r = _probe("h100-8", fake_libs["healthy"])
    assert r.versions["nvidia_driver"] == "580.65.06"
    assert {(d.status, d.health) for d in r.devices} == {("ok", "ok")}
    assert {d.memory_total_bytes for d in r.devices} == {80 << 30}
    assert r.devices[0].management_name == "NVIDIA H100 80GB HBM3"
    links = r.devices[0].links
    # 18 NVLinks spread over 4 NVSwitches: 5+5+4+4.
    assert sorted(link.count for link in links) == [4, 4, 5, 5]
    assert {link.peer_kind for link in links} == {"switch"}
    assert [(d.type, len(d.devices)) for d in r.topology.link_domains] == [("nvlink", 8)]


def test_nvml_device_error_is_per_device(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    fake_driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:3a:00.0")
    fake_driver.setenv("SUANLI_FAKE_ECC_BDF", "0000:9a:00.0")
    r = _probe("h100-8", fake_libs["healthy"])
    by = {d.bdf: d for d in r.devices}
    assert (by["0000:3a:00.0"].status, by["0000:3a:00.0"].health) == ("error", "failed")
    assert "GPU is lost" in (by["0000:3a:00.0"].status_detail or "")
    assert by["0000:9a:00.0"].health == "degraded"
    assert "ECC" in (by["0000:9a:00.0"].status_detail or "")
    assert sum(d.status == "ok" for d in r.devices) == 7
    # The lost GPU has no links, so the NVLink domain shrinks to the 7 that answer.
    assert [len(d.devices) for d in r.topology.link_domains] == [7]


@pytest.mark.parametrize(
    ("variant", "detail"),
    [
        ("init_fails", "nvmlInit_v2 failed: Driver Not Loaded"),
        ("omit_required", "missing symbol nvmlDeviceGetMemoryInfo"),
        ("broken", "invalid ELF header"),
    ],
)
def test_nvml_unusable_library_marks_devices(
    fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch, variant: str, detail: str
) -> None:
    r = _probe("h100-8", fake_libs[variant])
    nvml = next(m for m in r.management if m.library == "nvml")
    assert nvml.status == "error"
    assert detail in (nvml.detail or "")
    assert len(r.devices) == 8, "sysfs facts survive a broken library"
    assert {d.status for d in r.devices} == {"error"}
    assert all(detail in (d.status_detail or "") for d in r.devices)


def test_dcmi_fills_hbm_health_and_hccs_mesh(
    fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch
) -> None:
    fake_driver.setenv("SUANLI_FAKE_BDFS", ",".join(fixture_bdfs("ascend910b-8", "0x19e5")))
    fake_driver.setenv("SUANLI_FAKE_ALARM_BDF", "0000:41:00.0")
    fake_driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:61:00.0")
    r = _probe("ascend910b-8", fake_libs["healthy"])
    by = {d.bdf: d for d in r.devices}
    assert r.versions["ascend_driver"] == "24.1.rc2"
    assert by["0000:01:00.0"].memory_total_bytes == 64 << 30
    assert by["0000:01:00.0"].health == "ok"
    assert by["0000:41:00.0"].health == "failed"
    assert by["0000:61:00.0"].status == "error" and "dcmi_get_device_health" in (
        by["0000:61:00.0"].status_detail or ""
    )
    assert len(by["0000:01:00.0"].links) == 7, "910B: full HCCS mesh"
    assert [(d.type, len(d.devices)) for d in r.topology.link_domains] == [("hccs", 8)]


def test_dcmi_device_missing_from_driver(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    bdfs = fixture_bdfs("ascend910b-8", "0x19e5")
    fake_driver.setenv("SUANLI_FAKE_BDFS", ",".join(bdfs[:-1]))
    r = _probe("ascend910b-8", fake_libs["healthy"])
    lost = next(d for d in r.devices if d.bdf == bdfs[-1])
    assert lost.status == "error" and "not reported by DCMI" in (lost.status_detail or "")


def test_dcmi_missing_required_symbol(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    r = _probe("ascend910b-8", fake_libs["omit_required"])
    dcmi = next(m for m in r.management if m.library == "dcmi")
    assert dcmi.status == "error" and "dcmi_get_device_pcie_info" in (dcmi.detail or "")


def test_rocm_smi_fills_memory_and_xgmi_groups(
    fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch
) -> None:
    fake_driver.setenv("SUANLI_FAKE_BDFS", ",".join(fixture_bdfs("dcu-8", "0x1d94")))
    fake_driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:b3:00.0")
    r = _probe("dcu-8", fake_libs["healthy"])
    by = {d.bdf: d for d in r.devices}
    assert r.versions["hygon_driver"] == "6.3.28"
    assert by["0000:13:00.0"].memory_total_bytes == 64 << 30
    assert by["0000:b3:00.0"].status == "error"
    assert [(d.type, len(d.devices)) for d in r.topology.link_domains] == [("xgmi", 4), ("xgmi", 4)]


def test_rocm_smi_init_failure(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    r = _probe("dcu-8", fake_libs["init_fails"])
    assert {d.status for d in r.devices} == {"error"}
    assert "RSMI_STATUS_INIT_ERROR" in (r.devices[0].status_detail or "")


def test_env_var_selects_library_dir(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    fake_driver.setenv("SUANLI_VENDOR_LIB_PATH", f"/nonexistent:{fake_libs['healthy']}")
    r = kprobe.probe(str(FIXTURES / "h100-8"))
    nvml = next(m for m in r.management if m.library == "nvml")
    assert nvml.status == "ok" and nvml.path == str(fake_libs["healthy"] / "libnvidia-ml.so.1")


def test_ascend_bandwidth_through_acl(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    opts = kprobe.BenchOptions(budget_s=0.05, array_bytes=1 << 20, lib_path=str(fake_libs["healthy"]))
    r = kprobe.bench("ascend", opts)
    assert validate(r) == []
    assert r["status"] == "ok", r["error"]
    assert r["copy_gbs"] > 0 and r["triad_gbs"] is None and r["fma_gflops"] is None
    assert r["unsupported"] == ["triad_gbs", "fma_gflops"]
    assert [d["verified"] for d in r["devices"]] == [True, True]


def test_ascend_corrupt_copy_reports_no_number(
    fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch
) -> None:
    fake_driver.setenv("SUANLI_FAKE_CORRUPT", "1")
    fake_driver.setenv("SUANLI_FAKE_NPUS", "1")
    opts = kprobe.BenchOptions(budget_s=0.05, array_bytes=1 << 20, lib_path=str(fake_libs["healthy"]))
    r = kprobe.bench("ascend", opts)
    assert r["status"] == "error" and r["copy_gbs"] is None
    assert "copy verification failed" in r["devices"][0]["error"]


@pytest.mark.parametrize(("variant", "detail"), [("empty", "not loadable"), ("init_fails", "aclInit failed")])
def test_ascend_unusable_runtime(
    fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch, variant: str, detail: str
) -> None:
    r = kprobe.bench("ascend", kprobe.BenchOptions(budget_s=0.05, lib_path=str(fake_libs[variant])))
    assert r["status"] == "error" and detail in r["error"] and r["devices"] == []
