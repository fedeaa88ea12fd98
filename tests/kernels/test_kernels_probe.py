"""Probe against the fake sysfs trees: which devices, what model, where they sit."""

from __future__ import annotations

import filecmp
import os
import sys
from pathlib import Path

import pytest
from kernels_support import FIXTURES
from schema_check import validate

from suanli import probe as kprobe


@pytest.fixture(autouse=True)
def no_vendor_libs(fake_libs: dict[str, Path], fake_driver: pytest.MonkeyPatch) -> None:
    # The probe must not pick up whatever vendor stack the test machine has.
    fake_driver.setenv("SUANLI_VENDOR_LIB_PATH", str(fake_libs["empty"]))


def test_h100_server_groups_gpus_by_switch_and_numa() -> None:
    r = kprobe.probe(str(FIXTURES / "h100-8"))
    assert [d.model for d in r.devices] == ["H100 SXM5 80GB"] * 8
    assert {d.vendor for d in r.devices} == {"nvidia"}
    # NVSwitches (class 0x0680) and the BMC's VGA are not accelerators.
    assert "0000:d8:00.0" not in {d.bdf for d in r.devices}
    assert [len(s.devices) for s in r.topology.pcie_switches] == [2, 2, 2, 2]
    assert r.topology.numa_nodes == {
        0: ("0000:18:00.0", "0000:19:00.0", "0000:3a:00.0", "0000:3b:00.0"),
        1: ("0000:9a:00.0", "0000:9b:00.0", "0000:ba:00.0", "0000:bb:00.0"),
    }
    first = r.devices[0]
    assert first.pcie_path == ("0000:15:01.0", "0000:16:00.0", "0000:17:00.0")
    assert first.pcie_switch == "0000:16:00.0"
    assert first.root_complex == "pci0000:15"


def test_ascend_server_skips_huawei_nics_and_bridges() -> None:
    r = kprobe.probe(str(FIXTURES / "ascend910b-8"))
    assert [d.model for d in r.devices] == ["Ascend 910B"] * 8
    assert all(d.pcie_switch is None for d in r.devices), "NPUs sit directly on root ports"
    assert {n: len(b) for n, b in r.topology.numa_nodes.items()} == {0: 2, 1: 2, 2: 2, 3: 2}
    assert r.topology.pcie_switches == ()


def test_dcu_server_skips_hygon_host_bridges() -> None:
    r = kprobe.probe(str(FIXTURES / "dcu-8"))
    assert [d.model for d in r.devices] == ["K100_AI"] * 8
    assert {d.vendor_id for d in r.devices} == {"0x1d94"}
    assert len(r.topology.pcie_switches) == 4


def test_cpu_only_node_reports_nothing_and_no_errors() -> None:
    r = kprobe.probe(str(FIXTURES / "cpu-only"))
    assert r.devices == ()
    assert r.errors == ()
    assert {m.status for m in r.management} == {"not_needed"}


def test_without_management_library_devices_are_listed_with_status() -> None:
    r = kprobe.probe(str(FIXTURES / "h100-8"))
    assert {(d.status, d.health) for d in r.devices} == {("no_management_library", "unknown")}
    assert all("NVML" in (d.status_detail or "") for d in r.devices)
    nvml = next(m for m in r.management if m.library == "nvml")
    assert nvml.status == "missing"
    assert r.devices[0].memory_total_bytes is None


def test_missing_sysfs_root_is_a_clear_error() -> None:
    r = kprobe.probe("/nonexistent/sys")
    assert r.devices == ()
    assert len(r.errors) == 1 and "--sysfs-root" in r.errors[0]


@pytest.mark.parametrize("tree", ["h100-8", "ascend910b-8", "dcu-8", "cpu-only"])
def test_reports_match_schema(tree: str) -> None:
    assert validate(kprobe.probe(str(FIXTURES / tree)).raw) == []


def test_committed_fixtures_match_generator(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sysfs_generate", FIXTURES / "generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(gen)
    finally:
        del sys.modules[spec.name]
    gen.generate(tmp_path)
    for tree in gen.TREES:
        for dirpath, dirnames, filenames in os.walk(tmp_path / tree):
            rel = Path(dirpath).relative_to(tmp_path)
            committed = FIXTURES / rel
            for name in filenames + dirnames:
                fresh = Path(dirpath) / name
                if fresh.is_symlink():
                    assert os.readlink(committed / name) == os.readlink(fresh), rel / name
                elif fresh.is_file():
                    assert filecmp.cmp(committed / name, fresh, shallow=False), rel / name
            assert sorted(os.listdir(committed)) == sorted(os.listdir(dirpath)), rel
