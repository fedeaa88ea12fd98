"""The phase machine, driven by pods and node verdicts, on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from suanli.api import JobPhase, parse_job
from suanli.lifecycle import NodeVerdict, advance
from suanli.render.gang import spec_hash

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def running_job(restarts: int = 0, max_restarts: int = 2, restart_on: list[str] | None = None, **extra: Any) -> Any:
    failure: dict[str, Any] = {"maxRestarts": max_restarts}
    if restart_on is not None:
        failure["restartOn"] = restart_on
    return parse_job({
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"replicas": 2, "acceleratorsPerReplica": 8, "failurePolicy": failure,
                 "candidates": [{"vendor": "nvidia", "image": "i"}], **extra},
        "status": {"phase": "Running", "restarts": restarts, "vendor": "nvidia",
                   "placement": [{"replica": 0, "node": "n0"}, {"replica": 1, "node": "n1"}]},
    })


def pod(job: Any, replica: int, phase: str, node: str, generation: int = 0, hash_: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": f"j-g{generation}-{replica}", "labels": {
            "suanli.io/replica": str(replica), "suanli.io/generation": str(generation)},
            "annotations": {"suanli.io/spec-hash": hash_ or spec_hash(job)}},
        "spec": {"nodeName": node},
        "status": {"phase": phase},
    }


OK = {"n0": NodeVerdict.OK, "n1": NodeVerdict.OK}


def test_all_replicas_succeeded_means_succeeded() -> None:
    job = running_job()
    decision = advance(job, [pod(job, 0, "Succeeded", "n0"), pod(job, 1, "Succeeded", "n1")], OK, NOW)
    assert decision.phase == JobPhase.SUCCEEDED
    assert decision.status.completion_time == NOW
    assert ("Normal", "Succeeded", "all replicas succeeded") in decision.events


def test_one_success_is_not_enough() -> None:
    job = running_job()
    decision = advance(job, [pod(job, 0, "Succeeded", "n0"), pod(job, 1, "Running", "n1")], OK, NOW)
    assert decision.phase == JobPhase.RUNNING
    assert decision.status.ready_replicas == 1, "a finished replica is not counted as ready"


def test_failed_pod_restarts_the_whole_gang() -> None:
    job = running_job()
    pods = [pod(job, 0, "Failed", "n0"), pod(job, 1, "Running", "n1")]
    decision = advance(job, pods, OK, NOW)
    assert decision.phase == JobPhase.RESTARTING
    assert decision.status.restarts == 1
    assert sorted(decision.delete_pods) == ["j-g0-0", "j-g0-1"]
    assert decision.status.placement == []
    assert decision.status.bad_nodes == [], "a failed container does not blame its node"


def test_lost_node_restarts_and_is_avoided() -> None:
    job = running_job()
    pods = [pod(job, 0, "Running", "n0"), pod(job, 1, "Running", "n1")]
    decision = advance(job, pods, {"n0": NodeVerdict.OK, "n1": NodeVerdict.LOST}, NOW)
    assert decision.phase == JobPhase.RESTARTING and decision.status.reason == "NodeLost"
    assert decision.status.bad_nodes == ["n1"]
    assert decision.status.previous_nodes == ["n0", "n1"], "the planner prefers the gang's old domain"
    missing = advance(job, pods, {"n0": NodeVerdict.OK}, NOW)
    assert missing.status.reason == "NodeLost", "a node we no longer know counts as lost"


def test_unhealthy_accelerator_restarts_avoiding_the_node() -> None:
    job = running_job()
    pods = [pod(job, 0, "Running", "n0"), pod(job, 1, "Running", "n1")]
    decision = advance(job, pods, {"n0": NodeVerdict.UNHEALTHY, "n1": NodeVerdict.OK}, NOW)
    assert decision.status.reason == "AcceleratorUnhealthy" and decision.status.bad_nodes == ["n0"]


def test_restart_limit_fails_the_job_and_frees_its_pods() -> None:
    job = running_job(restarts=2, max_restarts=2)
    pods = [pod(job, 0, "Failed", "n0", generation=2), pod(job, 1, "Running", "n1", generation=2)]
    decision = advance(job, pods, OK, NOW)
    assert decision.phase == JobPhase.FAILED
    assert "restart limit reached (2)" in (decision.status.message or "")
    assert sorted(decision.delete_pods) == ["j-g2-0", "j-g2-1"]


def test_event_not_in_restart_on_fails_at_once() -> None:
    job = running_job(restart_on=["NodeLost"])
    decision = advance(job, [pod(job, 0, "Failed", "n0"), pod(job, 1, "Running", "n1")], OK, NOW)
    assert decision.phase == JobPhase.FAILED
    assert "restartOn does not include PodFailed" in (decision.status.message or "")


def test_stale_generation_pods_are_cleaned_up() -> None:
    job = running_job(restarts=1)
    pods = [pod(job, 0, "Running", "n0", generation=0), pod(job, 0, "Running", "n0", generation=1),
            pod(job, 1, "Running", "n1", generation=1)]
    decision = advance(job, pods, OK, NOW)
    assert decision.delete_pods == ["j-g0-0"]
    assert decision.phase == JobPhase.RUNNING


def test_spec_change_on_running_gang_is_refused_once() -> None:
    job = running_job()
    pods = [pod(job, 0, "Running", "n0", hash_="old"), pod(job, 1, "Running", "n1", hash_="old")]
    decision = advance(job, pods, OK, NOW)
    refused = [c for c in decision.status.conditions if c.type == "SpecChangeRefused"]
    assert refused and refused[0].status == "True" and "delete and re-create" in refused[0].message
    assert [e[1] for e in decision.events] == ["SpecChangeRefused"]
    again = advance(job.model_copy(update={"status": decision.status}), pods, OK, NOW)
    assert again.events == [], "the refusal is announced once, not on every pass"


def test_ttl_deletes_finished_job_only_after_it_expires() -> None:
    job = running_job(ttlSecondsAfterFinished=60)
    done = job.model_copy(update={"status": job.status.model_copy(update={
        "phase": JobPhase.SUCCEEDED, "completion_time": NOW})})
    assert not advance(done, [], OK, NOW + timedelta(seconds=59)).delete_job
    assert advance(done, [], OK, NOW + timedelta(seconds=60)).delete_job
