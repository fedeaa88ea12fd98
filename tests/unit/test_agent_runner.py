"""The agent loop and throughput publishing, with a recording publisher and injected probe/bench."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from suanli import cli
from suanli import probe as kernels
from suanli.agent import (
    BENCH_CHOICES,
    Agent,
    AgentSettings,
    NodeReport,
    build_report,
    choose_backend,
    desired_labels,
    read_bench,
    report_status,
)
from suanli.agent.bench_runner import BenchPlan
from suanli.agent.publisher import Published
from suanli.agent.throughput import Measurement
from suanli.api import AcceleratorNodeStatus, ConditionStatus, Vendor

from .test_agent_support import FIXTURES, fake_vendor_libs, kernels_library

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def h100_probe() -> kernels.ProbeReport:
    kernels_library()
    return kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(fake_vendor_libs()["healthy"]))


def bench_report(backend: str, copies: Sequence[float | None], fma_gflops: float | None = 51234.0) -> dict[str, Any]:
    """A bench report shaped like kernels/probe.schema.json's; None marks a device that failed verification."""
    devices = [
        {"index": i, "name": "H100", "status": "ok" if c is not None else "error",
         "error": None if c is not None else "stream verification failed: 3 wrong elements",
         "copy_gbs": c, "triad_gbs": c, "fma_gflops": fma_gflops if c is not None else None,
         "fma_dtype": "fp32", "verified": c is not None, "stream_mismatches": 0 if c is not None else 3,
         "array_bytes": 1 << 28, "stream_reps": 4}
        for i, c in enumerate(copies)
    ]
    ok = [c for c in copies if c is not None]
    failed = len(copies) - len(ok)
    return {
        "schema_version": 1, "kind": "bench", "backend": backend, "versions": {"suanli": "0.1.0"},
        "status": "error" if failed else "ok", "error": f"{failed} device(s) failed" if failed else None,
        "copy_gbs": min(ok) if ok else None, "triad_gbs": min(ok) if ok else None,
        "fma_gflops": fma_gflops if ok else None, "devices": devices,
    }


class Recorder:
    """Stands in for the Publisher: keeps every call and, like the server, the last status."""

    def __init__(self, fail_first: int = 0, request: str | None = None) -> None:
        self.calls: list[tuple[NodeReport | None, Measurement | None, str, str | None]] = []
        self.fail_first = fail_first
        self.status: AcceleratorNodeStatus | None = None
        self.request = request
        self.acked: list[str] = []

    def last_status(self) -> AcceleratorNodeStatus | None:
        return self.status

    def bench_request(self) -> str | None:
        return self.request if self.request not in self.acked else None

    def ack_bench_request(self, token: str) -> None:
        self.acked.append(token)

    def publish(
        self, report: NodeReport | None, measurement: Measurement | None, bench_note: str, now: datetime,
        probe_error: str | None = None,
    ) -> Published:
        self.calls.append((report, measurement, bench_note, probe_error))
        if len(self.calls) <= self.fail_first:
            raise ConnectionError("API server unreachable")
        assert report is not None or probe_error
        if report is not None:
            self.status = report_status(report, measurement, bench_note, self.status, False, now)
        return Published({}, None, (), self.status or AcceleratorNodeStatus())


class CountingStop(threading.Event):
    """A stop event that records each wait and stops the loop after `cycles` waits."""

    def __init__(self, cycles: int) -> None:
        super().__init__()
        self.waits: list[float | None] = []
        self.cycles = cycles

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return len(self.waits) >= self.cycles


class FakeClock:
    """Monotonic seconds that tests move forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_agent(
    publisher: Recorder, probe: Any, bench_calls: list[str], bench: dict[str, Any] | None = None,
    built: frozenset[str] = frozenset({"cpu", "cuda"}), monotonic: FakeClock | None = None, **settings: Any,
) -> Agent:
    def fake_bench(plan: BenchPlan) -> dict[str, Any]:
        bench_calls.append(plan.backend)
        assert plan.budget_s == settings.get("bench_budget_seconds", 2.0)
        return bench or bench_report(plan.backend, [2000.4] * 8)

    return Agent(AgentSettings(node_name="n1", **settings), publisher, probe=probe, bench=fake_bench,
                 available_backends=lambda: built, clock=lambda: NOW, monotonic=monotonic or FakeClock())


def test_bench_runs_at_start_with_the_vendor_backend(h100_probe: kernels.ProbeReport) -> None:
    publisher, benches = Recorder(), list[str]()
    agent = make_agent(publisher, lambda root, lib: h100_probe, benches)
    assert agent.run(CountingStop(cycles=3)) == 0
    assert benches == ["cuda"], "measured at start, then only every --bench-interval: not every probe"
    assert len(publisher.calls) == 3
    measurement = publisher.calls[-1][1]
    assert measurement is not None and measurement.ok and measurement.backend == "cuda"
    report = publisher.calls[-1][0]
    assert report is not None
    labels = desired_labels(report, measurement)
    assert labels["suanli.io/accelerator.membw-gbs"] == "2000"
    assert labels["suanli.io/accelerator.fma-tflops"] == "51.2"
    assert publisher.status is not None
    assert {d.throughput.memory_bandwidth_gbps for d in publisher.status.devices if d.throughput} == {2000.4}
    bench = next(c for c in publisher.status.conditions if c.type == "Benchmarked")
    assert (bench.status, bench.reason) == (ConditionStatus.TRUE, "Measured")
    assert "FMA 51.2 TFLOP/s (fp32)" in bench.message


def test_auto_skips_a_backend_the_library_lacks(h100_probe: kernels.ProbeReport) -> None:
    publisher, benches = Recorder(), list[str]()
    agent = make_agent(publisher, lambda root, lib: h100_probe, benches, built=frozenset({"cpu"}), once=True)
    assert agent.run(CountingStop(cycles=1)) == 0
    assert benches == []
    _, measurement, note, _ = publisher.calls[0]
    assert measurement is None and "has no cuda backend here" in note
    assert publisher.status is not None
    bench = next(c for c in publisher.status.conditions if c.type == "Benchmarked")
    assert (bench.status, bench.reason) == (ConditionStatus.UNKNOWN, "NotMeasured")


def test_failed_bench_changes_no_number(h100_probe: kernels.ProbeReport) -> None:
    """Labels and per-card numbers; what a failure means for health is the gate's (test_agent_gate.py)."""
    report = build_report(h100_probe)
    good = read_bench(bench_report("cuda", [2000.0] * 8))
    before = report_status(report, good, "", None, False, NOW)
    bad = read_bench(bench_report("cuda", [None] * 8))
    assert not bad.ok
    labels = desired_labels(report, bad)
    assert "suanli.io/accelerator.membw-gbs" not in labels, "left alone, not removed"
    assert labels["suanli.io/accelerator.healthy"] == "8"
    after = report_status(report, bad, "", before, False, NOW)
    assert [d.throughput for d in after.devices] == [d.throughput for d in before.devices]
    bench = next(c for c in after.conditions if c.type == "Benchmarked")
    assert (bench.status, bench.reason) == (ConditionStatus.FALSE, "BenchFailed")
    assert after.errors[0].startswith("bench cuda: 8 device(s) failed")


def test_per_card_numbers_need_matching_device_counts(h100_probe: kernels.ProbeReport) -> None:
    """A runtime that hides a card shifts every index after it: then only the node-level label is written."""
    report = build_report(h100_probe)
    seven = read_bench(bench_report("cuda", [1900.0] * 7))
    status = report_status(report, seven, "", None, False, NOW)
    assert all(d.throughput is None for d in status.devices)
    assert desired_labels(report, seven)["suanli.io/accelerator.membw-gbs"] == "1900"
    slowest = read_bench(bench_report("cuda", [2000.0] * 7 + [1500.0]))
    assert desired_labels(report, slowest)["suanli.io/accelerator.membw-gbs"] == "1500", "slowest card"
    status = report_status(report, slowest, "", None, False, NOW)
    assert status.devices[7].throughput is not None
    assert status.devices[7].throughput.memory_bandwidth_gbps == 1500.0


def test_cpu_bench_is_not_a_card_number(h100_probe: kernels.ProbeReport) -> None:
    measured = read_bench(kernels.bench("cpu", kernels.BenchOptions(budget_s=0.05, array_bytes=1 << 20)))
    assert measured.ok and measured.copy_gbs and measured.fma_tflops
    labels = desired_labels(build_report(h100_probe), measured)
    assert "suanli.io/accelerator.membw-gbs" not in labels and "suanli.io/accelerator.fma-tflops" not in labels
    status = report_status(build_report(h100_probe), measured, "", None, False, NOW)
    bench = next(c for c in status.conditions if c.type == "Benchmarked")
    assert bench.message.startswith("cpu: copy ") and "(fp64)" in bench.message


def test_probe_failure_publishes_the_failure_and_measures_nothing() -> None:
    def broken(root: str, lib: str | None) -> kernels.ProbeReport:
        raise kernels.KernelsUnavailableError("libsuanli_kernels.so not found")

    publisher, benches = Recorder(), list[str]()
    agent = make_agent(publisher, broken, benches, once=True)
    assert agent.run(CountingStop(cycles=1)) == 1, "--once says the probe failed"
    assert benches == []
    assert publisher.calls == [(None, None, "not measured yet", "libsuanli_kernels.so not found")]


def test_api_failure_retries_sooner_than_the_interval(h100_probe: kernels.ProbeReport) -> None:
    publisher, benches = Recorder(fail_first=1), list[str]()
    agent = make_agent(publisher, lambda root, lib: h100_probe, benches, interval_seconds=300, retry_seconds=7)
    stop = CountingStop(cycles=2)
    assert agent.run(stop) == 0
    assert stop.waits == [7, 300]
    assert len(publisher.calls) == 2 and benches == ["cuda"]


def test_once_returns_1_when_publishing_fails(h100_probe: kernels.ProbeReport) -> None:
    agent = make_agent(Recorder(fail_first=1), lambda root, lib: h100_probe, [], once=True)
    assert agent.run(CountingStop(cycles=1)) == 1


@pytest.mark.parametrize(
    ("requested", "vendor", "built", "backend"),
    [
        ("auto", Vendor.HUAWEI, frozenset({"cpu"}), "ascend"),
        ("auto", Vendor.HYGON, frozenset({"cpu", "hip"}), "hip"),
        ("auto", Vendor.HYGON, frozenset({"cpu", "cuda"}), None),
        ("auto", None, frozenset({"cpu", "cuda"}), None),
        ("none", Vendor.NVIDIA, frozenset({"cpu", "cuda"}), None),
        ("cpu", Vendor.NVIDIA, frozenset({"cpu"}), "cpu"),
    ],
)
def test_choose_backend(requested: str, vendor: Vendor | None, built: frozenset[str], backend: str | None) -> None:
    assert choose_backend(requested, vendor, built)[0] == backend


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"node_name": ""}, "--node-name"), ({"node_name": "n", "interval_seconds": 0}, "--interval"),
     ({"node_name": "n", "bench_budget_seconds": 0}, "--bench-budget")],
)
def test_bad_settings_name_the_flag(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AgentSettings(**settings)


def test_cli_without_a_node_name(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert cli.main(["agent", "--once"]) == 2
    assert "--node-name is empty" in capsys.readouterr().err


def test_cli_parses_agent_options(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["agent", "--node-name", "n", "--bench", "none", "--interval", "60"])
    assert (args.node_name, args.bench, args.interval, args.sysfs_root, args.once) == ("n", "none", 60.0, "/sys", False)
    for choice in BENCH_CHOICES:
        assert parser.parse_args(["agent", "--bench", choice]).bench == choice
    with pytest.raises(SystemExit):
        parser.parse_args(["agent", "--bench", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--golden-file", "/nonexistent/golden.yaml"], "golden file /nonexistent/golden.yaml: No such file"),
        (["--bench-timeout", "1", "--bench-budget", "2"], "--bench-timeout=1.0 must exceed twice --bench-budget"),
        (["--golden-fraction", "2"], "--golden-fraction=2.0 must be in (0, 1]"),
        (["--busy-memory-fraction", "-1"], "--busy-memory-fraction=-1.0 must be in [0, 1]"),
        (["--bench-interval", "-5"], "--bench-interval=-5.0 must be >= 0"),
    ],
)
def test_cli_rejects_bad_gate_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["agent", "--node-name", "n", "--once", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_passes_the_gate_options() -> None:
    from suanli.agent.options import settings_from

    args = cli.build_parser().parse_args(
        ["agent", "--node-name", "n", "--bench-interval", "0", "--bench-timeout", "30", "--golden-fraction", "0.8",
         "--median-fraction", "0.9", "--place-degraded", "--busy-memory-fraction", "0.5", "--golden-file", "g.yaml"])
    s = settings_from(args)
    assert (s.bench_interval_seconds, s.bench_timeout_seconds) == (0, 30)
    assert (s.golden_fraction, s.median_fraction) == (0.8, 0.9)
    assert s.place_degraded and s.busy_memory_fraction == 0.5 and s.golden_file == "g.yaml"
    assert s.policy().place_degraded
