"""The operator end to end: real kube-apiserver + etcd + garbage collector, kwok nodes of all three vendors."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import NODE_LOST_GRACE_S, tear_down, wait_for
from .operator_harness import (
    OperatorProcess,
    create_job,
    get_job,
    job_manifest,
    job_pods,
    make_fleet,
    phase,
    restarted_away,
)


@pytest.fixture
def fleet(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, operator: OperatorProcess
) -> Iterator[list[str]]:
    """Two racks of four 8-card nodes per vendor, only for this test.

    Teardown deletes the test's jobs and waits for their pods to go before the nodes do, so no gang of
    this test restarts onto the next test's fleet.
    """
    names = make_fleet(core, f"f{uuid.uuid4().hex[:5]}", ["huawei", "nvidia", "hygon"])
    try:
        yield names
    finally:
        tear_down(api_client, namespace, names)


def _env(core: client.CoreV1Api, pod: client.V1Pod) -> dict[str, str]:
    """The trainer's environment as the kubelet builds it: its envFrom ConfigMaps, then its env over them."""
    trainer = pod.spec.containers[0]
    out: dict[str, str] = {}
    for source in trainer.env_from or []:
        out.update(core.read_namespaced_config_map(source.config_map_ref.name, pod.metadata.namespace).data or {})
    out.update({e.name: e.value for e in trainer.env or []})
    return out


@pytest.mark.parametrize(
    ("vendor", "resource", "backend"),
    [
        ("huawei", "huawei.com/Ascend910", "HCCL"),
        ("nvidia", "nvidia.com/gpu", "NCCL"),
        ("hygon", "hygon.com/hcu", "RCCL"),
    ],
)
def test_job_runs_to_success_on_each_vendor(
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    namespace: str,
    fleet: list[str],
    vendor: str,
    resource: str,
    backend: str,
) -> None:
    create_job(api_client, namespace, job_manifest("train", [vendor], replicas=2, per_replica=8, after="3s"))
    wait_for(lambda: phase(api_client, namespace, "train") == "Running", 60, what="Running")
    pods = job_pods(core, namespace, "train")
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.scheduler_name == "suanli"
        assert pod.spec.node_name, "bound through the Binding subresource"
        assert vendor in pod.spec.node_name
        assert pod.spec.containers[0].resources.limits[resource] == "8"
        env = _env(core, pod)
        assert env["SUANLI_COLLECTIVE_BACKEND"] == backend
        assert env["WORLD_SIZE"] == "16" and env["PET_NNODES"] == "2" and env["PET_NPROC_PER_NODE"] == "8"
        assert env["MASTER_ADDR"] == f"train-0.train.{namespace}.svc"
    ranks = sorted(int(_env(core, p)["RANK"]) for p in pods)
    assert ranks == [0, 1], "RANK is the pod's node rank, as MindCluster and Kubeflow set it"
    core.read_namespaced_service("train", namespace)
    if vendor == "huawei":
        cm = core.read_namespaced_config_map("rings-config-train", namespace)
        # kwok runs no device plugin, so the table waits for its annotations (tests/integration/test_rank_table.py).
        assert json.loads(cm.data["hccl.json"])["status"] == "initializing" and cm.data["generation"] == "0"
    wait_for(lambda: phase(api_client, namespace, "train") == "Succeeded", 90, what="Succeeded")
    status = get_job(api_client, namespace, "train")["status"]
    assert status["vendor"] == vendor
    assert status["completionTime"] and status["startTime"]
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in status["conditions"])
    reasons = {e.reason for e in core.list_namespaced_event(namespace).items}
    assert {"Running", "Succeeded"} <= reasons
    running = next(e.message for e in core.list_namespaced_event(namespace).items if e.reason == "Running")
    assert running.startswith("all 2 replicas bound; placed 2 replicas on "), running


def test_same_job_falls_back_to_next_vendor_when_first_is_full(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    # 8 Ascend nodes: a 8x8 job fills them all; the next job prefers Ascend but must take H100.
    create_job(api_client, namespace, job_manifest("filler", ["huawei"], replicas=8, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "filler") == "Running", 30, what="filler Running")
    create_job(api_client, namespace, job_manifest("flex", ["huawei", "nvidia", "hygon"], replicas=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "flex") == "Running", 30, what="flex Running")
    status = get_job(api_client, namespace, "flex")["status"]
    assert status["vendor"] == "nvidia" and status["candidateIndex"] == 1
    assert all(p.spec.containers[0].image.endswith(":cuda") for p in job_pods(core, namespace, "flex"))


def test_gang_of_16_lands_in_one_rack(api_client: client.ApiClient, namespace: str, fleet: list[str]) -> None:
    create_job(api_client, namespace, job_manifest("wide", ["nvidia"], replicas=16, per_replica=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "wide") == "Running", 60, what="Running")
    status = get_job(api_client, namespace, "wide")["status"]
    assert status["span"]["racks"] == 1
    assert len({p["rack"] for p in status["placement"]}) == 1 and len(status["placement"]) == 16


def test_unfittable_job_waits_with_reason_then_starts_when_capacity_frees(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    create_job(api_client, namespace, job_manifest("hog", ["hygon"], replicas=8, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "hog") == "Running", 30, what="hog Running")
    create_job(api_client, namespace, job_manifest("waiter", ["hygon"], replicas=2, after="1s"))

    def pending_with_reason() -> str | None:
        status = get_job(api_client, namespace, "waiter").get("status") or {}
        return status.get("message") if status.get("reason") == "Unschedulable" else None

    message = wait_for(pending_with_reason, 20, what="an Unschedulable reason")
    assert "DCU-K100-AI" in message or "hygon" in message
    assert phase(api_client, namespace, "waiter") == "Pending"
    assert not job_pods(core, namespace, "waiter"), "a waiting gang holds nothing"
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "suanli.io", "v1alpha1", namespace, "aitrainingjobs", "hog"
    )
    wait_for(lambda: phase(api_client, namespace, "waiter") in ("Running", "Succeeded"), 60, what="waiter to start")


def test_higher_priority_job_preempts_a_lower_priority_gang(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    create_job(api_client, namespace, job_manifest("batch", ["hygon"], replicas=8, simulate=None, priority=-5))
    wait_for(lambda: phase(api_client, namespace, "batch") == "Running", 30, what="batch Running")
    create_job(api_client, namespace, job_manifest("urgent", ["hygon"], replicas=2, simulate=None, priority=100))
    wait_for(lambda: phase(api_client, namespace, "urgent") == "Running", 60, what="urgent to preempt and run")
    batch = get_job(api_client, namespace, "batch")["status"]
    assert batch["phase"] in ("Restarting", "Pending")
    assert batch["preemptions"] == 1 and batch["restarts"] == 0, "being preempted does not use up maxRestarts"
    assert any(c["type"] == "Restarting" and c["reason"] == "Preempted" for c in batch["conditions"])
    live = [p for p in job_pods(core, namespace, "batch") if p.metadata.deletion_timestamp is None]
    assert live == [], "the whole victim gang went, not just the cards the urgent job needed"
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=urgent").items
    assert any(e.reason == "Preempting" and "batch" in (e.message or "") for e in events)


def test_competing_gangs_never_hold_partial_allocations(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    # 8 H100 nodes; two gangs of 5 whole nodes each: exactly one fits, the other holds nothing.
    create_job(api_client, namespace, job_manifest("a", ["nvidia"], replicas=5, simulate=None))
    create_job(api_client, namespace, job_manifest("b", ["nvidia"], replicas=5, simulate=None))

    def settled() -> bool:
        return sorted([str(phase(api_client, namespace, "a")), str(phase(api_client, namespace, "b"))]) == [
            "Pending",
            "Running",
        ]

    wait_for(settled, 30, what="one Running and one Pending")
    counts = sorted([len(job_pods(core, namespace, "a")), len(job_pods(core, namespace, "b"))])
    assert counts == [0, 5]


def test_node_not_ready_restarts_the_gang_elsewhere(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    create_job(api_client, namespace, job_manifest("resilient", ["huawei"], replicas=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "resilient") == "Running", 60, what="Running")
    before = get_job(api_client, namespace, "resilient")["status"]["placement"]
    victim = before[0]["node"]
    # Take the node away from kwok and report it NotReady, as the node lifecycle controller would.
    core.patch_node(victim, {"metadata": {"annotations": {"kwok.x-k8s.io/node": None}}})
    lost_at = time.monotonic()
    core.patch_node_status(
        victim,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "message": "kubelet stopped posting",
                        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                ]
            }
        },
    )
    time.sleep(NODE_LOST_GRACE_S / 3)
    during = get_job(api_client, namespace, "resilient")["status"]
    assert (during["phase"], during["restarts"]) == ("Running", 0), "the gang outlives the grace's first seconds"

    wait_for(lambda: restarted_away(api_client, namespace, "resilient", victim), 40,
             what="a restart away from the lost node")
    assert time.monotonic() - lost_at >= NODE_LOST_GRACE_S - 1, "not before the grace ran out"
    status = get_job(api_client, namespace, "resilient")["status"]
    assert victim in status["badNodes"]
    assert status["previousNodes"] == sorted({p["node"] for p in before}), "kept for the planner to prefer"
    assert {p["rack"] for p in status["placement"]} == {p["rack"] for p in before}, "back in the same rack"
    live = [p for p in job_pods(core, namespace, "resilient") if p.metadata.deletion_timestamp is None]
    assert len(live) == 2 and all(p.metadata.labels["suanli.io/generation"] == "1" for p in live)


def test_deleting_a_job_removes_its_pods_service_and_rank_table(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    create_job(api_client, namespace, job_manifest("gone", ["huawei"], replicas=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "gone") == "Running", 60, what="Running")
    core.read_namespaced_config_map("rings-config-gone", namespace)
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "suanli.io", "v1alpha1", namespace, "aitrainingjobs", "gone"
    )

    def all_gone() -> bool:
        pods = job_pods(core, namespace, "gone")
        services = core.list_namespaced_service(namespace).items
        cms = [c for c in core.list_namespaced_config_map(namespace).items if c.metadata.name == "rings-config-gone"]
        return not pods and not services and not cms

    wait_for(all_gone, 40, what="the garbage collector to remove pods, Service and ConfigMap")


def test_killed_operator_resumes_without_duplicate_pods(
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    namespace: str,
    fleet: list[str],
    operator: OperatorProcess,
) -> None:
    names = [f"j{i}" for i in range(6)]
    for name in names:
        create_job(
            api_client,
            namespace,
            job_manifest(name, ["nvidia", "huawei", "hygon"], replicas=4, per_replica=2, simulate=None),
        )
    # Kill it as soon as the first gang is being bound: some jobs are mid-bind, some not started.
    wait_for(lambda: any(job_pods(core, namespace, n) for n in names), 30, interval=0.02, what="first pods")
    operator.kill()
    operator.start()

    def all_running() -> bool:
        return all(phase(api_client, namespace, n) == "Running" for n in names)

    wait_for(all_running, 60, what="every job Running after the restart")
    for name in names:
        pods = job_pods(core, namespace, name)
        replicas = sorted(int(p.metadata.labels["suanli.io/replica"]) for p in pods)
        assert replicas == [0, 1, 2, 3], (name, [p.metadata.name for p in pods])
        assert all(p.spec.node_name for p in pods)


def test_invalid_spec_change_on_running_job_is_refused(
    api_client: client.ApiClient, namespace: str, fleet: list[str]
) -> None:
    create_job(api_client, namespace, job_manifest("fixed", ["nvidia"], replicas=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "fixed") == "Running", 60, what="Running")
    try:
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            "suanli.io", "v1alpha1", namespace, "aitrainingjobs", "fixed", {"spec": {"replicas": 3}}
        )
    except ApiException as exc:  # the CRD itself may refuse it; that is a clear refusal too
        assert exc.status == 422 and "replicas" in exc.body
        return

    def refused() -> bool:
        conds = (get_job(api_client, namespace, "fixed").get("status") or {}).get("conditions", [])
        return any(c["type"] == "SpecChangeRefused" and c["status"] == "True" for c in conds)

    wait_for(refused, 20, what="a SpecChangeRefused condition")
    assert phase(api_client, namespace, "fixed") == "Running"


def test_metrics_report_jobs_latency_accelerators_and_metering(
    api_client: client.ApiClient, namespace: str, fleet: list[str], operator: OperatorProcess
) -> None:

    from prometheus_client.parser import text_string_to_metric_families

    create_job(api_client, namespace, job_manifest("metered", ["nvidia"], replicas=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "metered") == "Running", 60, what="Running")

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = operator.scrape()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metered() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = scrape()
        key = ("suanli_accelerator_seconds_total", (("model", "H100"), ("namespace", namespace), ("vendor", "nvidia")))
        return samples if samples.get(key, 0) > 0 else None

    samples = wait_for(metered, 20, interval=1, what="accelerator-seconds to accrue")
    assert samples[("suanli_jobs", (("phase", "Running"),))] >= 1
    assert samples[("suanli_scheduling_latency_seconds_count", (("vendor", "nvidia"),))] >= 1
    allocated = samples[("suanli_accelerators", (("model", "H100"), ("state", "allocated"), ("vendor", "nvidia")))]
    assert allocated >= 16
    assert samples[("suanli_placement_span_count", (("level", "rack"),))] >= 1


def test_unhealthy_accelerator_reported_by_the_agent_restarts_the_gang_elsewhere(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, fleet: list[str]
) -> None:
    create_job(api_client, namespace, job_manifest("sick", ["hygon"], replicas=2, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "sick") == "Running", 60, what="Running")
    victim = get_job(api_client, namespace, "sick")["status"]["placement"][1]["node"]
    # What `suanli agent` writes when it finds one of the node's 8 cards failed.
    core.patch_node(victim, {"metadata": {"labels": {"suanli.io/accelerator.healthy": "7"}}})

    wait_for(lambda: restarted_away(api_client, namespace, "sick", victim), 60,
             what="a restart away from the unhealthy node")
    status = get_job(api_client, namespace, "sick")["status"]
    assert victim in status["badNodes"]
    restarted = [c for c in status["conditions"] if c["type"] == "Restarting"]
    assert restarted and restarted[0]["reason"] == "AcceleratorUnhealthy"
