"""Health over time: healthy -> one bad card -> all bad -> recovered, as labels, taint, status and Events.

Each step's previous state is the status the step before would have published, as the agent reads it
back from the AcceleratorNode. Real probe reports of the h100-8 tree; the fake NVML can fail only one
card, so "all bad" marks every card failed in that real report's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from suanli import probe as kernels
from suanli.agent import (
    TAINT,
    NodeReport,
    Transition,
    build_report,
    desired_labels,
    health_transitions,
    report_status,
    taint_update,
    wants_taint,
)
from suanli.api import AcceleratorNodeStatus, ConditionStatus

from .test_agent_support import FIXTURES

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
THEIRS = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}


@dataclass
class Node:
    """What the API server holds for the node between agent runs."""

    taints: list[dict[str, Any]]
    status: AcceleratorNodeStatus | None = None


@dataclass(frozen=True)
class Step:
    healthy_label: str
    taint_change: bool | None
    events: list[Transition]
    status: AcceleratorNodeStatus


def publish(node: Node, report: NodeReport, now: datetime) -> Step:
    """What the publisher does with a report, minus the HTTP."""
    new_taints = taint_update(node.taints, wants_taint(report))
    change = None if new_taints is None else any(t["key"] == TAINT["key"] for t in new_taints)
    status = report_status(report, None, "", node.status, wants_taint(report), now)
    events = health_transitions(node.status, report, tainted=change is True, untainted=change is False)
    if new_taints is not None:
        node.taints = new_taints
    node.status = status
    label = desired_labels(report, None)["suanli.io/accelerator.healthy"]
    assert label is not None
    return Step(label, change, events, status)


def healthy_condition(status: AcceleratorNodeStatus) -> tuple[ConditionStatus, str, datetime]:
    c = next(c for c in status.conditions if c.type == "Healthy")
    return c.status, c.reason, c.last_transition_time


def h100(libs: dict[str, Path], variant: str = "healthy") -> kernels.ProbeReport:
    return kernels.probe(str(FIXTURES / "h100-8"), lib_path=str(libs[variant]))


def all_failed(report: kernels.ProbeReport) -> NodeReport:
    raw = report.raw
    for d in raw["devices"]:
        d |= {"health": "failed", "status": "error",
              "status_detail": "nvmlDeviceGetHandleByPciBusId_v2: GPU is lost (15)"}
    return build_report(kernels.parse_probe(raw))


def test_healthy_one_bad_all_bad_recovered(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    node = Node(taints=[THEIRS])

    first = publish(node, build_report(h100(libs)), T0)
    assert (first.healthy_label, first.taint_change, first.events) == ("8", None, [])
    assert healthy_condition(first.status)[:2] == (ConditionStatus.TRUE, "AllHealthy")

    driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:3a:00.0")
    t1 = T0 + timedelta(minutes=5)
    one_bad = publish(node, build_report(h100(libs)), t1)
    assert one_bad.healthy_label == "7"
    assert one_bad.taint_change is None and node.taints == [THEIRS], "some cards usable: the node stays open"
    assert [(e.reason, e.type) for e in one_bad.events] == [("AcceleratorUnhealthy", "Warning")]
    assert "card 2 (0000:3a:00.0): nvmlDeviceGetHandleByPciBusId_v2: GPU is lost" in one_bad.events[0].message
    assert "7 of 8 cards usable" in one_bad.events[0].message
    assert healthy_condition(one_bad.status) == (ConditionStatus.FALSE, "CardsUnhealthy", t1)

    again = publish(node, build_report(h100(libs)), t1 + timedelta(minutes=5))
    assert again.events == [], "no change, no event"

    t2 = t1 + timedelta(minutes=10)
    all_bad = publish(node, all_failed(h100(libs)), t2)
    assert all_bad.healthy_label == "0"
    assert all_bad.taint_change is True and node.taints == [THEIRS, TAINT]
    assert [(e.reason, e.type) for e in all_bad.events] == [("AcceleratorUnhealthy", "Warning")]
    message = all_bad.events[0].message
    assert "card 2" not in message, "only the cards that changed are listed"
    assert "0 of 8 cards usable" in message and "tainted the node suanli.io/unhealthy=true:NoSchedule" in message
    status, reason, since = healthy_condition(all_bad.status)
    assert (status, reason) == (ConditionStatus.FALSE, "AllUnhealthy")
    assert since == t1, "still False: the transition time says when it first went bad"
    assert all_bad.status.healthy_devices == 0

    driver.delenv("SUANLI_FAKE_FAIL_BDF")
    t3 = t2 + timedelta(minutes=5)
    recovered = publish(node, build_report(h100(libs)), t3)
    assert recovered.healthy_label == "8"
    assert recovered.taint_change is False and node.taints == [THEIRS]
    assert [(e.reason, e.type) for e in recovered.events] == [("AcceleratorRecovered", "Normal")]
    assert "removed the node's suanli.io/unhealthy taint" in recovered.events[0].message
    assert healthy_condition(recovered.status) == (ConditionStatus.TRUE, "AllHealthy", t3)


def test_library_loss_is_unknown_not_unhealthy(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    """A rollout that breaks NVML on every node must not take one card out of any of them."""
    node = Node(taints=[])
    publish(node, build_report(h100(libs)), T0)
    lost = publish(node, build_report(h100(libs, "init_fails")), T0 + timedelta(minutes=5))
    assert lost.healthy_label == "8" and lost.taint_change is None
    assert [(e.reason, e.type) for e in lost.events] == [("AcceleratorHealthUnknown", "Warning")]
    assert "nvmlInit_v2 failed: Driver Not Loaded" in lost.events[0].message
    assert "all 8 cards" in lost.events[0].message
    back = publish(node, build_report(h100(libs)), T0 + timedelta(minutes=10))
    assert [(e.reason, e.type, e.message) for e in back.events] == [
        ("AcceleratorRecovered", "Normal", "healthy again: all 8 cards; 8 of 8 cards usable")
    ], "a Normal event closes the Warning"
    assert back.healthy_label == "8"


def test_vanished_card_and_first_sight(libs: dict[str, Path], driver: pytest.MonkeyPatch) -> None:
    driver.setenv("SUANLI_FAKE_FAIL_BDF", "0000:3a:00.0")
    node = Node(taints=[])
    first = publish(node, build_report(h100(libs)), T0)
    assert [e.reason for e in first.events] == ["AcceleratorUnhealthy"], "a card bad from the start is news"

    raw = h100(libs).raw
    raw["devices"] = [d for d in raw["devices"] if d["bdf"] != "0000:3a:00.0"]
    gone = publish(node, build_report(kernels.parse_probe(raw)), T0 + timedelta(minutes=5))
    assert [e.reason for e in gone.events] == ["AcceleratorMissing"]
    assert "0000:3a:00.0" in gone.events[0].message
    assert gone.healthy_label == "7" and gone.status.total_devices == 7
