"""Two operator replicas with leader election: exactly one engine schedules; the standby takes over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .conftest import tear_down, wait_for
from .operator_harness import OperatorProcess, create_job, job_manifest, job_pods, make_fleet, phase

ROOT = Path(__file__).resolve().parents[2]
PEERING = "suanli-leader-test"


@pytest.fixture
def replicas(cluster: Any, crds_applied: list[str]) -> Iterator[list[OperatorProcess]]:
    procs = [
        OperatorProcess(
            cluster.kubeconfig,
            cluster.dir / f"leader-{i}-{uuid.uuid4().hex[:4]}.log",
            extra_args=("--leader-election", PEERING),
            env={"POD_NAME": f"replica-{i}", "POD_NAMESPACE": "default"},
        )
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


def test_only_the_lease_holder_schedules_and_a_standby_takes_over(
    api_client: client.ApiClient, namespace: str, replicas: list[OperatorProcess]
) -> None:
    core = client.CoreV1Api(api_client)
    coordination = client.CoordinationV1Api(api_client)
    nodes = make_fleet(core, f"l{uuid.uuid4().hex[:4]}", ["nvidia"], racks=1, nodes_per_rack=4)
    try:
        holder = wait_for(
            lambda: coordination.read_namespaced_lease(f"{PEERING}-engine", "default").spec.holder_identity,
            30,
            what="a Lease holder",
        )
        create_job(api_client, namespace, job_manifest("first", ["nvidia"], replicas=2, simulate=None))
        wait_for(lambda: phase(api_client, namespace, "first") == "Running", 60, what="first Running")
        assert len(job_pods(core, namespace, "first")) == 2, "one engine bound the gang, not two"

        leader = replicas[int(holder.rsplit("-", 1)[1])]
        leader.kill()
        create_job(api_client, namespace, job_manifest("second", ["nvidia"], replicas=2, simulate=None))
        # The Lease (15 s, by the standby's own clock) must expire first.
        wait_for(lambda: phase(api_client, namespace, "second") == "Running", 120, what="the standby to take over")
        new_holder = coordination.read_namespaced_lease(f"{PEERING}-engine", "default").spec.holder_identity
        assert new_holder != holder
        assert len(job_pods(core, namespace, "second")) == 2
    finally:
        tear_down(api_client, namespace, nodes)
