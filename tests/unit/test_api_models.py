"""The AITrainingJob / AcceleratorNode models: defaults, wire format, helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from suanli.api import (
    API_VERSION,
    AcceleratorNode,
    AITrainingJob,
    AITrainingJobSpec,
    Candidate,
    Condition,
    ConditionStatus,
    DeviceHealth,
    Framework,
    JobPhase,
    RestartEvent,
    TopologyLevel,
    Vendor,
    parse_job,
    parse_job_spec,
    parse_job_status,
    parse_node,
    set_condition,
)

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def minimal_spec(**extra: Any) -> dict[str, Any]:
    return {
        "replicas": 2,
        "acceleratorsPerReplica": 8,
        "candidates": [{"vendor": "nvidia", "image": "registry.example.com/train/llama:cuda12"}],
        **extra,
    }


def test_defaults_match_the_documented_ones() -> None:
    spec = parse_job_spec(minimal_spec())
    assert spec.min_replicas is None
    assert spec.gang_size == 2  # minReplicas defaults to replicas: all or nothing
    assert spec.allow_mixed_vendors is False
    assert spec.framework is Framework.PYTORCH
    assert spec.failure_policy.max_restarts == 3
    assert spec.failure_policy.restart_on == list(RestartEvent)
    assert spec.rendezvous_port == 29500
    assert spec.priority == 0
    assert spec.queue is None
    assert spec.topology.required is None and spec.topology.preferred is None
    assert spec.template.command == [] and spec.template.env == []


def test_gang_size_is_min_replicas_when_set() -> None:
    assert parse_job_spec(minimal_spec(replicas=8, minReplicas=4)).gang_size == 4


def test_wire_format_is_camel_case_and_round_trips() -> None:
    spec = parse_job_spec(
        minimal_spec(
            minReplicas=1,
            candidates=[{"vendor": "huawei", "model": "Ascend910B", "minMemoryGiB": 64, "image": "img:1"}],
            template={
                "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                "volumes": [{"name": "d", "emptyDir": {}}],
            },
            ttlSecondsAfterFinished=60,
        )
    )
    wire = spec.to_wire()
    assert wire["minReplicas"] == 1
    assert wire["candidates"][0]["minMemoryGiB"] == 64
    assert wire["template"]["volumeMounts"][0]["mountPath"] == "/d"
    assert wire["template"]["volumes"][0] == {"name": "d", "emptyDir": {}}  # opaque volume source kept
    assert wire["failurePolicy"]["restartOn"] == [
        "PodFailed",
        "NodeLost",
        "AcceleratorUnhealthy",
        "Preempted",
        "ReplicaLost",
    ]
    assert "queue" not in wire  # unset optionals stay off the wire
    assert not any("_" in key for key in _all_keys(wire))
    assert parse_job_spec(wire) == spec


def test_python_names_are_accepted_too() -> None:
    spec = AITrainingJobSpec(
        replicas=2,
        accelerators_per_replica=4,
        candidates=[Candidate(vendor=Vendor.HYGON, min_memory_gib=32, image="img:dtk")],
    )
    assert spec.to_wire()["acceleratorsPerReplica"] == 4
    assert spec.candidates[0].min_memory_gib == 32


def test_whole_job_parses_and_keeps_metadata() -> None:
    job = parse_job(
        {
            "apiVersion": API_VERSION,
            "kind": "AITrainingJob",
            "metadata": {"name": "j", "namespace": "team-a", "uid": "1234", "labels": {"a": "b"}},
            "spec": minimal_spec(),
        }
    )
    assert isinstance(job, AITrainingJob)
    assert (job.name, job.namespace) == ("j", "team-a")
    assert job.metadata["labels"] == {"a": "b"}
    assert job.status.phase is None and job.status.placement == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_parses(path: Path) -> None:
    job = parse_job(yaml.safe_load(path.read_text()))
    assert job.spec.candidates, path
    assert job.name, f"{path.name} has no metadata.name"


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 6


def test_topology_levels_are_ordered_narrowest_first() -> None:
    ranks = [
        level.rank
        for level in (TopologyLevel.NODE, TopologyLevel.RACK, TopologyLevel.ZONE, TopologyLevel.REGION)
    ]
    assert ranks == sorted(ranks) == [0, 1, 2, 3]


def test_phase_knows_when_it_is_finished() -> None:
    assert {p for p in JobPhase if p.finished} == {JobPhase.SUCCEEDED, JobPhase.FAILED}


def test_timestamps_are_written_in_utc_seconds() -> None:
    shanghai = timezone(timedelta(hours=8))
    status = parse_job_status(
        {"startTime": datetime(2026, 1, 2, 11, 4, 5, 123456, tzinfo=shanghai), "phase": "Running"}
    )
    assert status.to_wire()["startTime"] == "2026-01-02T03:04:05Z"
    assert parse_job_status({"startTime": "2026-01-02T03:04:05Z"}).start_time == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )


def test_empty_status_parses() -> None:
    assert parse_job_status(None).phase is None


def _condition(status: ConditionStatus, minute: int) -> Condition:
    return Condition(
        type="Ready",
        status=status,
        reason="AllReplicasReady",
        last_transition_time=datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
    )


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    first = [_condition(ConditionStatus.TRUE, 1)]
    same = set_condition(first, _condition(ConditionStatus.TRUE, 9).model_copy(update={"message": "still"}))
    assert len(same) == 1
    assert same[0].last_transition_time.minute == 1
    assert same[0].message == "still"
    flipped = set_condition(same, _condition(ConditionStatus.FALSE, 9))
    assert flipped[0].last_transition_time.minute == 9
    other = set_condition(flipped, _condition(ConditionStatus.TRUE, 3).model_copy(update={"type": "Placed"}))
    assert [c.type for c in other] == ["Ready", "Placed"]


def test_accelerator_node_parses() -> None:
    node = parse_node(
        {
            "apiVersion": API_VERSION,
            "kind": "AcceleratorNode",
            "metadata": {"name": "gpu-01"},
            "spec": {"nodeName": "gpu-01"},
            "status": {
                "vendor": "nvidia",
                "model": "H100",
                "devices": [
                    {
                        "index": 0,
                        "vendor": "nvidia",
                        "model": "H100",
                        "memoryMiB": 81559,
                        "health": "Healthy",
                        "busId": "0000:18:00.0",
                        "numaNode": 0,
                        "linkDomain": "nvlink-0",
                        "throughput": {"matmulTFLOPS": 756.2, "memoryBandwidthGBps": 2900.0, "dtype": "bf16"},
                    }
                ],
                "totalDevices": 1,
                "healthyDevices": 1,
                "lastProbeTime": "2026-11-25T10:00:00Z",
            },
        }
    )
    assert isinstance(node, AcceleratorNode)
    device = node.status.devices[0]
    assert device.health is DeviceHealth.HEALTHY
    assert device.throughput is not None and device.throughput.matmul_tflops == pytest.approx(756.2)
    assert node.status.to_wire()["devices"][0]["throughput"]["matmulTFLOPS"] == pytest.approx(756.2)


def _all_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for key, sub in value.items() for k in (key, *_all_keys(sub))]
    if isinstance(value, list):
        return [k for item in value for k in _all_keys(item)]
    return []
