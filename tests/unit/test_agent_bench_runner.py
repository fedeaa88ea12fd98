"""Benches in child processes, for real: the kernels library with the fake GPU backend of tests/kernels/fakes.

Each child is `python -m suanli.probe --bench cuda --device i`, which dlopens the fake libsuanli_cuda.so;
the SUANLI_FAKE_GPU_* variables make one device corrupt, slow, hang or crash.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from suanli import probe as kernels
from suanli.agent import Agent, AgentSettings
from suanli.agent.bench_runner import BenchPlan, child_command, merge, run_plan
from suanli.agent.throughput import read_bench
from suanli.api import DeviceHealth

from .test_agent_runner import NOW, CountingStop, FakeClock, Recorder
from .test_agent_support import FIXTURES, fake_gpu_backend_dir, fake_vendor_libs, kernels_library


@pytest.fixture
def gpus(driver: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Eight fake CUDA devices behind the real library; tests add faults through the monkeypatch."""
    kernels_library()
    driver.setenv("SUANLI_BACKEND_DIR", str(fake_gpu_backend_dir()))
    driver.setenv("SUANLI_FAKE_GPUS", "8")
    return driver


def outcomes(report: dict[str, Any]) -> dict[int, str]:
    return {d["index"]: d["outcome"] for d in report["devices"]}


def test_one_child_per_device_merged_into_one_report(gpus: pytest.MonkeyPatch) -> None:
    gpus.setenv("SUANLI_FAKE_GPU_SLOW", "2")
    report = run_plan(BenchPlan("cuda", list(range(8)), budget_s=0.05, timeout_s=60))
    assert report["status"] == "ok" and report["device_count"] == 8
    assert outcomes(report) == dict.fromkeys(range(8), "ok")
    assert report["copy_gbs"] == pytest.approx(2900 * 0.4), "the slowest verified device at the top"
    m = read_bench(report)
    assert m.devices_seen == 8 and m.per_device[0] == (pytest.approx(2900.0), pytest.approx(58.0))


def test_corrupt_crashed_and_hung_devices_are_reported_and_the_rest_measured(gpus: pytest.MonkeyPatch) -> None:
    gpus.setenv("SUANLI_FAKE_GPU_CORRUPT", "1")
    gpus.setenv("SUANLI_FAKE_GPU_CRASH", "4")
    # The first device hangs: every later one must still be collected, each within its own limit.
    gpus.setenv("SUANLI_FAKE_GPU_HANG", "0")
    started = time.monotonic()
    report = run_plan(BenchPlan("cuda", list(range(8)), budget_s=0.05, timeout_s=5))
    took = time.monotonic() - started
    assert took < 30, "children run at once: one hang costs one time limit, not one per device"
    assert outcomes(report) == {0: "timeout", 1: "corrupt", 2: "ok", 3: "ok", 4: "crashed", 5: "ok", 6: "ok", 7: "ok"}
    by_index = {d["index"]: d for d in report["devices"]}
    assert by_index[1]["error"] == "fma verification failed: 3 wrong lanes"
    assert by_index[4]["error"] == "bench process killed by SIGABRT"
    assert "did not finish within 5s and was killed" in by_index[0]["error"]
    assert report["status"] == "error" and report["error"].startswith("3 of 8 device(s) failed")
    assert report["device_count"] == 8


def test_inject_fault_reaches_the_kernels(gpus: pytest.MonkeyPatch) -> None:
    report = run_plan(BenchPlan("cuda", [0, 1], budget_s=0.05, timeout_s=60, inject_fault=True))
    assert outcomes(report) == {0: "corrupt", 1: "corrupt"}
    cpu = run_plan(BenchPlan("cpu", None, budget_s=0.05, timeout_s=60, inject_fault=True,
                             extra_env={"SUANLI_CGROUP_ROOT": "/nonexistent"}))
    assert outcomes(cpu) == {0: "corrupt"}, "the CPU kernels' fault switch, through the child"


def test_a_runtime_without_devices_is_an_error_not_a_verdict(gpus: pytest.MonkeyPatch) -> None:
    gpus.setenv("SUANLI_FAKE_GPUS", "-1")
    report = run_plan(BenchPlan("cuda", [0], budget_s=0.05, timeout_s=60))
    assert outcomes(report) == {0: "error"}
    assert "driver not loaded" in report["devices"][0]["error"]


def test_child_command_and_environment(gpus: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plan = BenchPlan("cuda", [3], budget_s=0.5, lib_path="/host/usr/lib64")
    cmd = child_command(plan, 3)
    assert cmd[1:] == ["-m", "suanli.probe", "--bench", "cuda", "--json", "--budget", "0.5", "--device", "3",
                       "--lib-path", "/host/usr/lib64"]
    # A child that prints garbage and exits 0 is a crash, not a result.
    empty = merge("cuda", [], [])
    assert empty["status"] == "error" and empty["error"] == "no device was measured"


def make_agent(publisher: Recorder, **settings: Any) -> Agent:
    probe = kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(fake_vendor_libs()["healthy"]))
    return Agent(AgentSettings(node_name="n1", bench_budget_seconds=0.05, **settings), publisher,
                 probe=lambda root, lib: probe, clock=lambda: NOW, monotonic=FakeClock())


def test_agent_survives_a_hanging_and_a_crashing_bench(gpus: pytest.MonkeyPatch) -> None:
    gpus.setenv("SUANLI_FAKE_GPU_HANG", "2")
    gpus.setenv("SUANLI_FAKE_GPU_CRASH", "5")
    publisher = Recorder()
    agent = make_agent(publisher, bench_timeout_seconds=4)
    stop = CountingStop(cycles=2)
    assert agent.run(stop) == 0
    assert len(publisher.calls) == 2, "the agent kept cycling after the bench hung and crashed"
    assert publisher.status is not None
    health = {d.index: (d.health, d.health_reason) for d in publisher.status.devices}
    assert health[2] == (DeviceHealth.DEGRADED, "BenchTimedOut")
    assert health[5] == (DeviceHealth.DEGRADED, "BenchCrashed")
    assert sum(h == DeviceHealth.HEALTHY for h, _ in health.values()) == 6
    bench = next(c for c in publisher.status.conditions if c.type == "Benchmarked")
    assert bench.reason == "BenchFailed" and "device 2" in bench.message and "device 5" in bench.message


def test_agent_scheduled_retest_and_on_request(gpus: pytest.MonkeyPatch) -> None:
    gpus.setenv("SUANLI_FAKE_GPU_CORRUPT", "3")
    publisher, clock = Recorder(), FakeClock()
    probe = kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(fake_vendor_libs()["healthy"]))
    agent = Agent(AgentSettings(node_name="n1", bench_budget_seconds=0.05, bench_interval_seconds=3600), publisher,
                  probe=lambda root, lib: probe, clock=lambda: NOW, monotonic=clock)
    agent.cycle()
    assert publisher.calls[-1][0] is not None and publisher.calls[-1][0].usable == 7
    assert publisher.status is not None and publisher.status.devices[3].health_reason == "DataCorruption"

    # The card is fixed (or the fault was transient): a scheduled pass does not bring it back...
    gpus.delenv("SUANLI_FAKE_GPU_CORRUPT")
    clock.now += 3601
    agent.cycle()
    assert publisher.calls[-1][0] is not None and publisher.calls[-1][0].usable == 7
    # ...an administrator's re-test does, once.
    publisher.request = "2026-11-30T10:00"
    agent.cycle()
    assert publisher.acked == ["2026-11-30T10:00"]
    assert publisher.calls[-1][0] is not None and publisher.calls[-1][0].usable == 8
    assert publisher.status.devices[3].health == DeviceHealth.HEALTHY


def test_busy_cards_are_not_benched(gpus: pytest.MonkeyPatch) -> None:
    publisher = Recorder()
    agent = make_agent(publisher, busy_memory_fraction=0.0)  # the fake NVML reports 1 GiB in use on every card
    agent.cycle()
    _, measurement, note, _ = publisher.calls[-1]
    assert measurement is None and "busy" in note


def test_a_bench_that_cannot_start_is_a_failed_measurement(gpus: pytest.MonkeyPatch) -> None:
    def cannot_fork(plan: BenchPlan) -> dict[str, Any]:
        raise OSError(11, "Resource temporarily unavailable")

    publisher = Recorder()
    probe = kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(fake_vendor_libs()["healthy"]))
    agent = Agent(AgentSettings(node_name="n1"), publisher, probe=lambda root, lib: probe, bench=cannot_fork,
                  clock=lambda: NOW, monotonic=FakeClock())
    ok, _ = agent.cycle()
    measurement = publisher.calls[-1][1]
    assert ok and measurement is not None and not measurement.ok
    assert "cannot start the bench" in (measurement.error or "")
    assert publisher.calls[-1][0] is not None and publisher.calls[-1][0].usable == 8
