"""The health gate and the golden table: bench outcomes -> card health, labels, status and Events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from suanli import probe as kernels
from suanli.agent import build_report, desired_labels, health_transitions, report_status, wants_taint
from suanli.agent.gate import (
    GatePolicy,
    Reason,
    Verdict,
    apply_verdicts,
    judge,
    merge_verdicts,
    verdicts_from_status,
)
from suanli.agent.golden import BUILT_IN, GoldenError, GoldenTable, Source, load_file, table_from
from suanli.agent.report import NodeReport
from suanli.agent.throughput import DeviceResult, Measurement, Outcome, read_bench
from suanli.api import ConditionStatus, DeviceHealth

from .test_agent_support import FIXTURES, fake_vendor_libs, kernels_library

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOLDEN = GoldenTable.load()
POLICY = GatePolicy()
H100_COPY = 2903.0  # golden copy of 10de:2330 (the fixture's H100 SXM5), golden.yaml
H100_FMA = 60.3


@pytest.fixture(scope="module")
def h100() -> NodeReport:
    kernels_library()
    return build_report(kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(fake_vendor_libs()["healthy"])))


def measured(
    *results: DeviceResult, backend: str = "cuda", seen: int | None = None, method: str = "kernel"
) -> Measurement:
    ok = [r for r in results if r.outcome == Outcome.OK]
    return Measurement(
        backend=backend, ok=len(ok) == len(results), error=None,
        copy_gbs=min((r.copy_gbs for r in ok if r.copy_gbs), default=None),
        fma_tflops=min((r.fma_tflops for r in ok if r.fma_tflops), default=None),
        fma_dtype="fp32", devices=results, devices_seen=len(results) if seen is None else seen, copy_method=method,
    )


def good(i: int, copy: float = 2950.0, fma: float = 62.0) -> DeviceResult:
    return DeviceResult(i, Outcome.OK, copy, fma)


# ---- the golden table ----


def test_built_in_table_names_a_source_for_every_figure() -> None:
    entries = load_file(BUILT_IN)
    models = {e.model for e in entries}
    assert {"A100", "H100", "H200", "Ascend910B", "Ascend910C", "DCU-K100", "DCU-K100-AI", "DCU-Z100"} <= models
    for e in entries:
        for figure in (e.copy_gbps, e.dma_copy_gbps, e.fma_tflops):
            if figure is not None:
                assert figure.ref and (figure.value is None) == (figure.source == Source.NOT_FOUND)
    # Ascend's copy is a DMA copy: it has no kernel-copy figure to be held to.
    assert all(e.copy_gbps is None for e in entries if e.model.startswith("Ascend"))


def test_board_entry_first_then_the_lowest_board_of_the_model() -> None:
    sxm = GOLDEN.expected("H100", "10de:2330", "kernel")
    assert sxm is not None and sxm.copy_gbps is not None and sxm.copy_gbps.value == H100_COPY
    unknown_board = GOLDEN.expected("H100", "10de:9999", "kernel")
    assert unknown_board is not None and unknown_board.copy_gbps is not None
    assert unknown_board.copy_gbps.value == 1700, "the H100 PCIe figure: a PCIe card must not look slow"
    assert GOLDEN.expected("RTX4090", None, "kernel") is None
    ascend = GOLDEN.expected("Ascend910B", "19e5:d802", "dma")
    assert ascend is not None and ascend.copy_gbps is not None and ascend.copy_gbps.source == Source.NOT_FOUND
    kernel_copy = GOLDEN.expected("Ascend910B", "19e5:d802", "kernel")
    assert kernel_copy is not None and kernel_copy.copy_gbps is None, "a DMA figure never judges a kernel copy"


def test_admin_file_replaces_and_adds_entries(tmp_path: Path) -> None:
    path = tmp_path / "golden.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "models": [
        {"model": "H100", "pciDevice": "10de:2330", "copyGBps": {"value": 3100, "source": "M", "ref": "our fleet"}},
        {"model": "RTX4090", "fmaTFLOPS": {"value": 70, "source": "M", "ref": "lab"}},
    ]}))
    table = GoldenTable.load(path)
    sxm = table.expected("H100", "10de:2330", "kernel")
    assert sxm is not None and sxm.copy_gbps is not None and sxm.copy_gbps.value == 3100
    assert sxm.fma_tflops is None, "the admin's entry replaces the whole entry"
    rtx = table.expected("RTX4090", None, "kernel")
    assert rtx is not None and rtx.fma_tflops is not None and rtx.fma_tflops.source == Source.MEASURED
    assert table.expected("A100", "10de:20b2", "kernel") is not None, "other built-in entries stay"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 1, "models": [{"model": "H100", "copyGBps": {"value": 1, "source": "NF", "ref": "x"}}]},
         "null exactly when source is NF"),
        ({"version": 1, "models": [{"model": "H100", "copyGBps": {"value": None, "source": "P", "ref": "x"}}]},
         "null exactly when source is NF"),
        ({"version": 1, "models": [{"model": "H100", "copyGBps": {"value": -5, "source": "M", "ref": "x"}}]},
         "models.0.copyGBps.value"),
        ({"version": 1, "models": [{"model": "H100", "copyGbps": {"value": 5, "source": "M", "ref": "x"}}]},
         "models.0.copyGbps: Extra inputs are not permitted"),
        ({"version": 1, "models": [{"model": "H100", "pciDevice": "10DE-2330"}]}, "models.0.pciDevice"),
        ({"version": 2, "models": []}, "version"),
        ({"version": 1, "models": [{"model": "H100"}, {"model": "H100"}]}, "models[1] repeats model H100"),
    ],
)
def test_bad_golden_data_names_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(GoldenError, match=message.replace("[", r"\[").replace("]", r"\]")):
        table_from(data)


def test_unreadable_golden_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GoldenError, match="--golden-file"):
        GoldenTable.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(GoldenError, match="not valid YAML"):
        GoldenTable.load(bad)


# ---- verdicts ----


def test_verification_mismatch_is_data_corruption(h100: NodeReport) -> None:
    results = [good(i) for i in range(8)]
    results[3] = DeviceResult(3, Outcome.CORRUPT, detail="fma verification failed: 3 wrong lanes")
    verdicts, notes = judge(h100.vendor_cards, measured(*results), GOLDEN, POLICY)
    card = h100.vendor_cards[3]
    assert notes == []
    assert verdicts[card.bus_id] == Verdict(DeviceHealth.UNHEALTHY, Reason.DATA_CORRUPTION,
                                            "verification failed: fma verification failed: 3 wrong lanes")
    assert all(v.health == DeviceHealth.HEALTHY for b, v in verdicts.items() if b != card.bus_id)

    gated = apply_verdicts(h100, verdicts, POLICY)
    assert (gated.usable, gated.unhealthy) == (7, 1)
    assert desired_labels(gated, None)["suanli.io/accelerator.healthy"] == "7"
    status = report_status(gated, None, "", None, False, NOW)
    device = status.devices[3]
    assert (device.health, device.health_reason) == (DeviceHealth.UNHEALTHY, "DataCorruption")
    healthy = next(c for c in status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.FALSE, "DataCorruption")
    [event] = health_transitions(None, gated, tainted=False, untainted=False)
    assert (event.reason, event.type) == ("AcceleratorDataCorruption", "Warning")
    assert card.bus_id in event.message and "7 of 8 cards usable" in event.message


def test_below_golden_is_degraded_and_not_placed(h100: NodeReport) -> None:
    results = [good(i) for i in range(8)]
    results[5] = good(5, copy=0.7 * H100_COPY)
    verdicts, _ = judge(h100.vendor_cards, measured(*results), GOLDEN, POLICY)
    slow = verdicts[h100.vendor_cards[5].bus_id]
    assert (slow.health, slow.reason) == (DeviceHealth.DEGRADED, Reason.BELOW_GOLDEN)
    assert "0.75 x golden 2903 GB/s" in slow.message and "H100 SXM5 80GB (10de:2330)" in slow.message
    assert "source S" in slow.message

    gated = apply_verdicts(h100, verdicts, POLICY)
    assert (gated.usable, gated.degraded, gated.unhealthy) == (7, 1, 0)
    status = report_status(gated, None, "", None, False, NOW)
    assert status.devices[5].health == DeviceHealth.DEGRADED and status.healthy_devices == 7
    healthy = next(c for c in status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.FALSE, "CardsDegraded")
    [event] = health_transitions(None, gated, tainted=False, untainted=False)
    assert event.reason == "AcceleratorDegraded" and "no longer placed" in event.message

    placed = apply_verdicts(h100, verdicts, GatePolicy(place_degraded=True))
    assert placed.usable == 8, "--place-degraded keeps it usable"
    [event] = health_transitions(None, placed, tainted=False, untainted=False)
    assert "still placed" in event.message


def test_exactly_at_the_fraction_passes(h100: NodeReport) -> None:
    results = [good(i, copy=0.75 * H100_COPY, fma=0.75 * H100_FMA) for i in range(8)]
    verdicts, _ = judge(h100.vendor_cards, measured(*results), GOLDEN, POLICY)
    assert {v.health for v in verdicts.values()} == {DeviceHealth.HEALTHY}


def test_well_below_the_node_median_is_degraded(h100: NodeReport) -> None:
    # A model the table does not know: only its siblings tell that card 2 is slow.
    cards = tuple(replace(c, model="X200", pci_id="10de:ffff") for c in h100.vendor_cards)
    results = [good(i, copy=1000.0, fma=30.0) for i in range(8)]
    results[2] = good(2, copy=700.0, fma=30.0)
    verdicts, _ = judge(cards, measured(*results), GOLDEN, POLICY)
    slow = verdicts[cards[2].bus_id]
    assert (slow.health, slow.reason) == (DeviceHealth.DEGRADED, Reason.BELOW_NODE_MEDIAN)
    assert "0.8 x node median 1000 GB/s" in slow.message
    # Two cards cannot tell which one is slow.
    verdicts, _ = judge(cards[:2], measured(good(0, 1000.0, 30.0), good(1, 500.0, 30.0)), GOLDEN, POLICY)
    assert {v.health for v in verdicts.values()} == {DeviceHealth.HEALTHY}


def test_crash_and_hang_are_degraded_and_errors_judge_nothing(h100: NodeReport) -> None:
    results = [good(i) for i in range(8)]
    results[1] = DeviceResult(1, Outcome.CRASHED, detail="bench process killed by SIGABRT")
    results[4] = DeviceResult(4, Outcome.TIMED_OUT, detail="bench did not finish within 120s")
    results[6] = DeviceResult(6, Outcome.ERROR, detail="allocate stream arrays: out of memory")
    verdicts, _ = judge(h100.vendor_cards, measured(*results), GOLDEN, POLICY)
    bus = [c.bus_id for c in h100.vendor_cards]
    assert (verdicts[bus[1]].reason, verdicts[bus[4]].reason) == (Reason.BENCH_CRASHED, Reason.BENCH_TIMED_OUT)
    assert verdicts[bus[1]].health == verdicts[bus[4]].health == DeviceHealth.DEGRADED
    assert bus[6] not in verdicts, "a bench that could not run says nothing about the card"


def test_busy_cards_are_judged_on_corruption_only(h100: NodeReport) -> None:
    bus = [c.bus_id for c in h100.vendor_cards]
    results = [good(i, copy=100.0) for i in range(8)]
    results[0] = DeviceResult(0, Outcome.CORRUPT, detail="stream verification failed: 1 wrong elements")
    verdicts, _ = judge(h100.vendor_cards, measured(*results), GOLDEN, POLICY, busy=frozenset(bus))
    assert verdicts[bus[0]].reason == Reason.DATA_CORRUPTION
    assert all(verdicts[b].health == DeviceHealth.HEALTHY for b in bus[1:]), "slow because busy: not Degraded"


def test_results_that_cannot_be_matched_to_cards_judge_nothing(h100: NodeReport) -> None:
    results = [good(i) for i in range(7)] + [DeviceResult(7, Outcome.CORRUPT, detail="x")]
    verdicts, notes = judge(h100.vendor_cards, measured(*results, seen=9), GOLDEN, POLICY)
    assert verdicts == {}
    [note] = notes
    assert "lists 9 devices" in note and "FAILED VERIFICATION" in note
    cpu = measured(good(0), backend="cpu")
    assert judge(h100.vendor_cards, cpu, GOLDEN, POLICY) == ({}, []), "the host's numbers are not a card's"


def test_driver_verdict_stands_over_the_bench(h100: NodeReport) -> None:
    lost = replace(h100.cards[0], health=DeviceHealth.UNHEALTHY, detail="GPU is lost", reason="DriverReported")
    report = replace(h100, cards=(lost, *h100.cards[1:]))
    verdicts = {lost.bus_id: Verdict(DeviceHealth.DEGRADED, Reason.BENCH_CRASHED, "crashed")}
    gated = apply_verdicts(report, verdicts, POLICY)
    assert (gated.cards[0].health, gated.cards[0].reason) == (DeviceHealth.UNHEALTHY, "DriverReported")


def test_data_corruption_is_cleared_only_on_request() -> None:
    corrupt = {"a": Verdict(DeviceHealth.UNHEALTHY, Reason.DATA_CORRUPTION, "x")}
    passed = {"a": Verdict(DeviceHealth.HEALTHY, None, "passed")}
    assert merge_verdicts(corrupt, passed, on_demand=False) == corrupt
    assert merge_verdicts(corrupt, passed, on_demand=True) == passed
    slow = {"a": Verdict(DeviceHealth.DEGRADED, Reason.BELOW_GOLDEN, "x")}
    assert merge_verdicts(slow, passed, on_demand=False) == passed, "Degraded clears on any passing re-test"
    assert merge_verdicts(corrupt, {}, on_demand=True) == corrupt, "untested cards keep their verdict"


def test_a_restarted_agent_keeps_the_gate_verdicts(h100: NodeReport) -> None:
    bus = h100.vendor_cards[3].bus_id
    gated = apply_verdicts(h100, {bus: Verdict(DeviceHealth.UNHEALTHY, Reason.DATA_CORRUPTION, "x")}, POLICY)
    status = report_status(gated, None, "", None, False, NOW)
    restored = verdicts_from_status(status)
    assert list(restored) == [bus] and restored[bus].sticky
    again = apply_verdicts(h100, restored, POLICY)
    assert again.usable == 7
    # A card the driver reported is not the gate's verdict: it is re-read from the driver.
    lost = replace(h100.cards[0], health=DeviceHealth.UNHEALTHY, reason="DriverReported")
    status = report_status(replace(h100, cards=(lost, *h100.cards[1:])), None, "", None, False, NOW)
    assert verdicts_from_status(status) == {}


def test_every_card_out_taints_and_recovery_is_reported(h100: NodeReport) -> None:
    everything = {c.bus_id: Verdict(DeviceHealth.DEGRADED, Reason.BELOW_GOLDEN, "slow") for c in h100.vendor_cards}
    gated = apply_verdicts(h100, everything, POLICY)
    assert gated.usable == 0 and wants_taint(gated)
    before = report_status(gated, None, "", None, True, NOW)
    events = health_transitions(before, h100, tainted=False, untainted=True)
    assert [e.reason for e in events] == ["AcceleratorRecovered"]
    assert "removed the node's suanli.io/unhealthy taint" in events[0].message


def test_read_bench_classifies_devices() -> None:
    raw = {"backend": "cuda", "status": "error", "copy_method": "kernel", "device_count": 3, "devices": [
        {"index": 0, "status": "ok", "verified": True, "copy_gbs": 10.0, "fma_gflops": 2000.0,
         "stream_mismatches": 0, "fma_mismatches": 0},
        {"index": 1, "status": "error", "verified": False, "error": "fma verification failed",
         "stream_mismatches": 0, "fma_mismatches": 2},
        {"index": 2, "status": "error", "verified": False, "error": "killed", "outcome": "crashed"},
    ]}
    m = read_bench(raw)
    assert [d.outcome for d in m.devices] == [Outcome.OK, Outcome.CORRUPT, Outcome.CRASHED]
    assert m.devices_seen == 3 and m.per_device == {0: (10.0, 2.0)}
    dma = read_bench({"backend": "ascend", "status": "ok", "copy_method": "dma", "copy_gbs": 900.0, "devices": []})
    assert dma.summary().startswith("ascend: DMA copy 900.0 GB/s")


def test_gate_fractions_are_checked() -> None:
    with pytest.raises(ValueError, match="--golden-fraction"):
        GatePolicy(golden_fraction=1.5)
    with pytest.raises(ValueError, match="--median-fraction"):
        GatePolicy(median_fraction=0)


def test_long_verdicts_are_clipped_in_the_condition(h100: NodeReport) -> None:
    verdicts = {c.bus_id: Verdict(DeviceHealth.DEGRADED, Reason.BENCH_CRASHED, "x" * 5000) for c in h100.vendor_cards}
    status = report_status(apply_verdicts(h100, verdicts, POLICY), None, "", None, True, NOW)
    healthy = next(c for c in status.conditions if c.type == "Healthy")
    assert len(healthy.message) == 8192 and healthy.message.endswith("...")
