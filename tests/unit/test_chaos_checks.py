"""bench/chaos.py's invariant checks on hand-made snapshots: a checker that never fires would let the chaos
run pass whatever the engine does, so each violation kind is shown to be caught, and a healthy view to pass."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from chaos import ChaosConfig, check_jobs, check_snapshot, plan_jobs, racks_needed


def _pod(name: str, job: str, replica: int, generation: int = 0, node: str | None = "n1", cards: int = 8,
         phase: str = "Running", terminating: bool = False) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name, namespace="ns",
            labels={"suanli.io/job": job, "suanli.io/replica": str(replica), "suanli.io/generation": str(generation)},
            deletion_timestamp="2026-01-01T00:00:00Z" if terminating else None,
        ),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(
            name="w", resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(cards)}))]),
        status=client.V1PodStatus(phase=phase),
    )


def _node(name: str, cards: int = 8) -> client.V1Node:
    return client.V1Node(metadata=client.V1ObjectMeta(name=name),
                         status=client.V1NodeStatus(allocatable={"nvidia.com/gpu": str(cards)}))


def _job(name: str, replicas: int, phase: str = "Running", restarts: int = 0,
         placement: dict[int, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": replicas},
        "status": {"phase": phase, "restarts": restarts,
                   "placement": [{"replica": r, "node": n} for r, n in (placement or {}).items()]},
    }


def test_a_healthy_view_has_no_violations() -> None:
    pods = [_pod("j-g0-0", "j", 0, node="n1"), _pod("j-g0-1", "j", 1, node="n2")]
    assert check_snapshot(pods, [_node("n1"), _node("n2")]).total() == 0
    assert check_jobs([_job("j", 2, placement={0: "n1", 1: "n2"})], pods).total() == 0


def test_two_live_pods_for_one_replica_are_a_duplicate_across_generations() -> None:
    pods = [_pod("j-g0-0", "j", 0, node="n1", cards=1), _pod("j-g1-0", "j", 0, generation=1, node="n1", cards=1)]
    found = check_snapshot(pods, [_node("n1")])
    assert len(found.duplicates) == 1 and "replica 0" in found.duplicates[0]


def test_terminating_and_finished_pods_are_not_duplicates_but_terminating_ones_hold_cards() -> None:
    pods = [_pod("j-g0-0", "j", 0, node="n1", terminating=True), _pod("j-g1-0", "j", 0, generation=1, node="n1")]
    found = check_snapshot(pods, [_node("n1")])
    assert found.duplicates == []
    assert len(found.overcommitted) == 1 and "16 nvidia.com/gpu" in found.overcommitted[0]
    done = [_pod("j-g0-0", "j", 0, node="n1", phase="Failed"), _pod("j-g1-0", "j", 0, generation=1, node="n1")]
    assert check_snapshot(done, [_node("n1")]).total() == 0


def test_a_gang_bound_in_part_or_beside_an_older_generation_is_partial() -> None:
    half = [_pod("j-g0-0", "j", 0, node="n1"), _pod("j-g0-1", "j", 1, node=None)]
    assert len(check_jobs([_job("j", 2, placement={0: "n1", 1: "n2"})], half).partial) == 1
    stale = [_pod("j-g0-0", "j", 0, node="n1"), _pod("j-g1-0", "j", 0, generation=1, node="n2")]
    found = check_jobs([_job("j", 1, restarts=1, placement={0: "n2"})], stale)
    assert len(found.partial) == 1 and "j-g0-0" in found.partial[0]


def test_misplaced_and_not_running_jobs_are_reported() -> None:
    pods = [_pod("j-g0-0", "j", 0, node="n9")]
    found = check_jobs([_job("j", 1, placement={0: "n1"}), _job("k", 1, phase="Pending")], pods)
    assert len(found.misplaced) == 1 and "n9" in found.misplaced[0]
    assert len(found.not_running) == 1 and "ns/k" in found.not_running[0]


def test_the_fleet_holds_every_planned_gang_at_once() -> None:
    cfg = ChaosConfig(gangs=50, seed=4)
    jobs = plan_jobs(cfg, random.Random(cfg.seed))
    assert len(jobs) == 50 and len({j["metadata"]["name"] for j in jobs}) == 50
    racks = racks_needed(jobs)
    for vendor, count in racks.items():
        asked = sum(j["spec"]["replicas"] * j["spec"]["acceleratorsPerReplica"] for j in jobs
                    if j["spec"]["candidates"][0]["vendor"] == vendor)
        assert count * 8 * 8 >= asked * 1.25
