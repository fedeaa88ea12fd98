"""Fault injection in the engine: API failures mid-gang must leave no partial gang and no leaked capacity.

The Kubernetes client is replaced by in-memory fakes that fail on command; everything else (inventory,
planner, rendering, phase machine) is the real code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.controller.engine import Controller
from suanli.settings import OperatorSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fleet import node_dict


class FakeKube:
    """Just enough of the engine's KubeApi: pods, bindings, job statuses; the rest is accepted."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.binds = 0
        self.fail_bind_at: int | None = None
        self.deleted: list[str] = []
        self.statuses: list[dict[str, Any]] = []
        self.created: list[str] = []

    def create(self, ns: str, plural: str, body: dict[str, Any]) -> None:
        self.created.append(plural)
        if plural != "pods":
            return
        key = (ns, body["metadata"]["name"])
        if key in self.pods:
            raise ApiException(status=409, reason="AlreadyExists")
        self.pods[key] = body

    def bind(self, ns: str, pod: str, node: str) -> None:
        self.binds += 1
        if self.fail_bind_at is not None and self.binds == self.fail_bind_at:
            raise ApiException(status=500, reason="etcdserver: request timed out")
        self.pods[(ns, pod)]["spec"]["nodeName"] = node

    def delete_pod(self, ns: str, name: str) -> None:
        if self.pods.pop((ns, name), None) is None:
            raise ApiException(status=404, reason="NotFound")
        self.deleted.append(name)

    def patch_job_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)


@pytest.fixture
def engine() -> Controller:
    controller = Controller(client.ApiClient(client.Configuration()))
    controller.kube = FakeKube()  # type: ignore[assignment]
    for i in range(4):
        controller.on_node("ADDED", node_dict(f"n{i}", 1, "r0", "z0", "region-a"))
    return controller


def job(name: str = "gang", replicas: int = 4, priority: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": "2026-11-25T12:00:00Z"},
        "spec": {"replicas": replicas, "acceleratorsPerReplica": 8,
                 "candidates": [{"vendor": "nvidia", "model": "H100", "image": "img"}], "priority": priority},
        "status": {"phase": "Pending"},
    }


def free_cards(engine: Controller) -> int:
    return sum(state.free_cards for n in engine.inventory.nodes() if (state := engine.inventory.state(n.name)))


def test_gang_binds_whole(engine: Controller) -> None:
    engine.on_job("ADDED", job())
    engine.schedule()
    engine.drain()
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    assert len(fake.pods) == 4 and all(p["spec"].get("nodeName") for p in fake.pods.values())
    phases = [s["phase"] for s in engine.kube.statuses]  # type: ignore[attr-defined]
    assert phases == ["Scheduling", "Running"], "the plan is persisted before pods are created"
    assert free_cards(engine) == 0


def test_bind_failure_midway_rolls_back_the_whole_gang(engine: Controller) -> None:
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    fake.fail_bind_at = 3
    engine.on_job("ADDED", job())
    engine.schedule()
    engine.drain()
    assert fake.pods == {}, "no pod of a half-bound gang survives"
    assert sorted(fake.deleted) == [f"gang-g0-{i}" for i in range(4)]
    last = engine.kube.statuses[-1]  # type: ignore[attr-defined]
    assert last["phase"] == "Pending" and last["reason"] == "BindFailed" and last["placement"] == []
    assert "etcdserver: request timed out" in last["message"]
    assert free_cards(engine) == 32, "the plan's reservation is released"
    assert engine.metrics.bind_failures._value.get() == 1

    fake.fail_bind_at = None
    engine.on_job("MODIFIED", {**job(), "status": last})
    engine.schedule()
    engine.drain()
    assert fake.pods == {}, "a gang that just failed to bind backs off instead of spinning"
    engine._retry_at.clear()
    engine.schedule()
    engine.drain()
    assert len(fake.pods) == 4 and engine.kube.statuses[-1]["phase"] == "Running"  # type: ignore[attr-defined]


def test_competing_gangs_in_one_pass_never_share_cards(engine: Controller) -> None:
    engine.on_job("ADDED", job("a", replicas=3))
    engine.on_job("ADDED", job("b", replicas=3))
    engine.schedule()
    engine.drain()
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    by_job: dict[str, int] = {}
    for (_, name) in fake.pods:
        by_job[name.split("-g")[0]] = by_job.get(name.split("-g")[0], 0) + 1
    assert sorted(by_job.values()) == [3], "one gang whole, the other holds nothing"
    waiting = [s for s in engine.kube.statuses if s.get("reason") == "Unschedulable"]  # type: ignore[attr-defined]
    assert waiting and "no room" in waiting[0]["message"]


def test_unready_node_is_not_used_and_its_gang_is_judged_lost(engine: Controller) -> None:
    lost = node_dict("n0", 1, "r0", "z0", "region-a")
    lost["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    engine.on_node("MODIFIED", lost)
    engine.on_job("ADDED", job(replicas=3))
    engine.schedule()
    engine.drain()
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    assert all(p["spec"]["nodeName"] != "n0" for p in fake.pods.values())
    assert engine._verdict("n0").value == "Lost"


def test_higher_priority_gang_goes_first_when_only_one_fits(engine: Controller) -> None:
    low = job("low", replicas=3)
    high = job("high", replicas=3, priority=10)
    high["metadata"]["creationTimestamp"] = "2026-11-25T12:05:00Z"  # newer, yet first
    engine.on_job("ADDED", low)
    engine.on_job("ADDED", high)
    engine.schedule()
    engine.drain()
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    assert {name.split("-g")[0] for (_, name) in fake.pods} == {"high"}


def test_a_client_side_error_rolls_back_and_backs_off(engine: Controller) -> None:
    fake: FakeKube = engine.kube  # type: ignore[assignment]

    def refuse(ns: str, pod: str, node: str) -> None:
        raise ValueError("Input should be a valid string")

    fake.bind = refuse  # type: ignore[method-assign]
    engine.on_job("ADDED", job())
    engine.schedule()
    engine.drain()
    assert fake.pods == {} and free_cards(engine) == 32
    assert engine.kube.statuses[-1]["reason"] == "BindFailed"  # type: ignore[attr-defined]
    assert engine._held(("ns", "gang"))


def test_a_mixed_gang_records_each_replicas_candidate_and_renders_each_vendor(engine: Controller) -> None:
    for i in range(2):
        engine.on_node("ADDED", node_dict(f"a{i}", 0, "r1", "z0", "region-a"))
    body = job("elastic", replicas=6)
    body["spec"]["allowMixedVendors"] = True
    body["spec"]["candidates"] = [{"vendor": "nvidia", "image": "cuda"}, {"vendor": "huawei", "image": "cann"}]
    engine.on_job("ADDED", body)
    engine.schedule()
    engine.drain()
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    placed = next(s for s in fake.statuses if s["phase"] == "Scheduling")
    assert placed["vendor"] is None and placed["model"] == "mixed"
    assert "4 H100 (nvidia) + 2 Ascend910B (huawei)" in placed["message"]
    by_node = {r["node"]: r["candidateIndex"] for r in placed["placement"]}
    assert by_node == {"n0": 0, "n1": 0, "n2": 0, "n3": 0, "a0": 1, "a1": 1}
    images = {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in fake.pods.values()}
    assert images == {n: ("cuda" if n.startswith("n") else "cann") for n in by_node}
    assert fake.statuses[-1]["phase"] == "Running" and "configmaps" not in fake.created, "no HCCL table for a mix"
    ascend = [p["spec"] for p in fake.pods.values() if p["spec"]["nodeName"].startswith("a")]
    assert ascend and all(not spec.get("volumes") for spec in ascend), "so no Ascend pod mounts one"
    assert all("RANK_TABLE_FILE" not in {e["name"] for e in spec["containers"][0]["env"]} for spec in ascend)


def _run(engine: Controller, *jobs: dict[str, Any]) -> FakeKube:
    """Submit `jobs`, bind what fits, and report the pods back as the pod watch would."""
    for body in jobs:
        engine.on_job("ADDED", body)
    engine.schedule()
    engine.drain()
    fake: FakeKube = engine.kube  # type: ignore[assignment]
    for pod in fake.pods.values():
        engine.on_pod("MODIFIED", {**pod, "status": {"phase": "Running"}})
    return fake


def test_a_higher_priority_gang_preempts_the_lowest_whole_gang_and_then_runs(engine: Controller) -> None:
    _run(engine, job("low", replicas=2), job("mid", replicas=2, priority=5))
    fake = _run(engine, job("urgent", replicas=2, priority=10))
    assert sorted(fake.deleted) == ["low-g0-0", "low-g0-1"], "only the lowest-priority gang, whole"
    low = next(s for s in fake.statuses if s.get("reason") == "Preempted")
    assert low["phase"] == "Restarting" and "preempted by ns/urgent (priority 10)" in low["message"]
    waiting = fake.statuses[-1]
    assert waiting["phase"] == "Pending" and waiting["reason"] == "Preempting" and "ns/low" in waiting["message"]
    engine.schedule()
    assert sorted(fake.deleted) == ["low-g0-0", "low-g0-1"], "no second round while the victims' pods go"
    for name in fake.deleted:
        engine.on_pod("DELETED", {"metadata": {"name": name, "namespace": "ns", "labels": {}}})
    engine.schedule()
    engine.drain()
    assert {n.split("-g")[0] for (_, n) in fake.pods} == {"mid", "urgent"}
    assert engine.metrics.restarts.labels("ns", "Preempted")._value.get() == 1


def test_preemption_can_be_turned_off(engine: Controller) -> None:
    engine.settings = OperatorSettings(preemption=False)
    _run(engine, job("low", replicas=4))
    fake = _run(engine, job("urgent", replicas=1, priority=10))
    assert fake.deleted == [] and fake.statuses[-1]["reason"] == "Unschedulable"


def test_nodes_freed_by_preemption_are_held_for_the_preempting_job(engine: Controller) -> None:
    fake = _run(engine, job("low", replicas=2), job("mid", replicas=2, priority=5))
    low_nodes = {p["spec"]["nodeName"] for (_, n), p in fake.pods.items() if n.startswith("low")}
    _run(engine, job("urgent", replicas=2, priority=10))
    assert len(fake.deleted) == 2
    first, second = fake.deleted
    engine.on_pod("DELETED", {"metadata": {"name": first, "namespace": "ns", "labels": {}}})
    fake = _run(engine, job("tiny", replicas=1))  # would fit on the node just freed
    assert not any(n.startswith("tiny") for (_, n) in fake.pods), "held for urgent"
    tiny = next(s for s in reversed(fake.statuses) if s.get("reason") == "Unschedulable")
    assert "held for a preempting job" in tiny["message"]
    engine.on_pod("DELETED", {"metadata": {"name": second, "namespace": "ns", "labels": {}}})
    engine.schedule()
    engine.drain()
    urgent = {p["spec"]["nodeName"] for (_, n), p in fake.pods.items() if n.startswith("urgent")}
    assert urgent == low_nodes
