"""The Ascend rank table's lifecycle against a real control plane (kube-apiserver, etcd, kwok nodes).

kwok gives pods IPs but runs no device plugin, so each test writes the annotation the way MindCluster's
ascend-device-plugin writes it (component/ascend-device-plugin/pkg/common/proto.go Instance/Device; the plugin
records the pod UID as server_id and the host IP) onto the gang's pods, as the real plugin would after the kubelet
allocated the cards.

Needs the engine wiring described in the render.ranktable module docstring: the 1.2 test needs GangSlot
.rank_table_schema filled from the node, and the reset test needs the table replaced before the new gang's pods
are created (today's engine replaces it only on a later pod event). The shared-node test passes as is.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from . import operator_harness
from .conftest import tear_down, wait_for
from .operator_harness import OperatorProcess, create_job, get_job, job_manifest, job_pods, phase

ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-910-configuration"


def _ascend_nodes(core: client.CoreV1Api, prefix: str, count: int, cards: int = 8,
                  labels: dict[str, str] | None = None) -> list[str]:
    names = []
    for n in range(count):
        name = f"{prefix}-n{n}"
        # bench/fleet.py's Node, labelled like a MindCluster Ascend 910B server (vendor index 0).
        node = operator_harness.node_dict(name, 0, f"{prefix}-r0", "z0", "region-a", cards=cards)
        node["metadata"]["labels"].update(labels or {})
        node["metadata"]["annotations"] = {"kwok.x-k8s.io/node": "fake"}
        core.create_node(node)
        names.append(name)
    return names


@pytest.fixture
def cleanup(api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
            operator: OperatorProcess) -> Iterator[list[str]]:
    """Nodes the test creates go into the yielded list; jobs and their pods go first at teardown."""
    nodes: list[str] = []
    try:
        yield nodes
    finally:
        tear_down(api_client, namespace, nodes)


def _gang(core: client.CoreV1Api, namespace: str, job: str, generation: int, size: int) -> list[client.V1Pod]:
    """The generation's pods, once all have an IP (kwok assigns them when it marks the pod running)."""
    def ready() -> list[client.V1Pod] | None:
        pods = [p for p in job_pods(core, namespace, job)
                if p.metadata.labels.get("suanli.io/generation") == str(generation)]
        return pods if len(pods) == size and all(p.status.pod_ip for p in pods) else None
    found: list[client.V1Pod] = wait_for(ready, 60, what=f"generation {generation} pods with IPs")
    return sorted(found, key=lambda p: int(p.metadata.labels["suanli.io/replica"]))


def _host_ip(pod: client.V1Pod) -> str:
    """The IP the node's device plugin reports as host_ip. kwok gives every fake node one address, so the test
    stands in a distinct one per node (node "<prefix>-n3" -> 192.168.3.1), as real servers have."""
    return f"192.168.{int(pod.spec.node_name.rsplit('-n', 1)[1])}.1"


def _annotate_like_the_device_plugin(core: client.CoreV1Api, namespace: str, pod: client.V1Pod,
                                     device_ids: list[int], super_pod_id: int = -1) -> None:
    replica = int(pod.metadata.labels["suanli.io/replica"])
    devices = [{"device_id": str(d), "device_ip": f"10.{replica}.0.{d}",
                **({"super_device_id": str(100000 + d)} if super_pod_id >= 0 else {})} for d in device_ids]
    record = {"pod_name": pod.metadata.name, "server_id": pod.metadata.uid, "host_ip": _host_ip(pod),
              "super_pod_id": super_pod_id, "devices": devices}
    core.patch_namespaced_pod(pod.metadata.name, namespace, {"metadata": {"annotations": {ANNOTATION:
                                                                                          json.dumps(record)}}})


def _table(core: client.CoreV1Api, namespace: str, job: str) -> tuple[dict[str, Any], dict[str, str]]:
    data = core.read_namespaced_config_map(f"rings-config-{job}", namespace).data or {}
    return json.loads(data.get("hccl.json") or "{}"), data


def _completed(core: client.CoreV1Api, namespace: str, job: str, generation: int) -> dict[str, Any]:
    """The table once completed for ``generation``; on timeout the error quotes what it still waits for."""
    last: dict[str, str] = {}

    def done() -> dict[str, Any] | None:
        nonlocal last
        table, last = _table(core, namespace, job)
        return table if table.get("status") == "completed" and last.get("generation") == str(generation) else None

    try:
        found: dict[str, Any] = wait_for(done, 30, what=f"generation {generation} completed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; ConfigMap data: {last}") from None
    return found


def test_two_replicas_on_one_node_get_unique_server_ids(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, cleanup: list[str]
) -> None:
    cleanup += _ascend_nodes(core, f"o{uuid.uuid4().hex[:5]}", 1)
    create_job(api_client, namespace, job_manifest("shared", ["huawei"], replicas=2, per_replica=4, simulate=None,
                                                   topology={"required": "node"}))
    wait_for(lambda: phase(api_client, namespace, "shared") == "Running", 60, what="Running")
    pods = _gang(core, namespace, "shared", 0, 2)
    assert pods[0].spec.node_name == pods[1].spec.node_name, "both replicas share the node"
    # A table still waiting is written at most once a second: within a few, it says what it waits for.
    wait_for(lambda: "has not written" in _table(core, namespace, "shared")[1].get("waiting", ""), 10,
             what="the table to name the missing device annotations")
    table, _ = _table(core, namespace, "shared")
    assert table.get("status") == "initializing", "no device plugin annotation yet: nothing is guessed"
    # The kubelet gave the two pods disjoint cards of the node.
    for pod, cards in zip(pods, ([4, 5, 6, 7], [0, 1, 2, 3]), strict=True):
        _annotate_like_the_device_plugin(core, namespace, pod, cards)
    table = _completed(core, namespace, "shared", 0)
    servers = table["server_list"]
    assert [s["server_id"] for s in servers] == [p.metadata.uid for p in pods], "pod UIDs, not the shared host IP"
    assert len({s["server_id"] for s in servers}) == 2
    assert [d["device_id"] for d in servers[0]["device"]] == ["4", "5", "6", "7"], "the plugin's ids, not guessed"
    assert [s["container_ip"] for s in servers] == [p.status.pod_ip for p in pods]
    assert [d["rank_id"] for s in servers for d in s["device"]] == [str(i) for i in range(8)]


def test_a_restarted_gang_starts_from_a_reset_table(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, cleanup: list[str]
) -> None:
    cleanup += _ascend_nodes(core, f"r{uuid.uuid4().hex[:5]}", 4)
    create_job(api_client, namespace, job_manifest("again", ["huawei"], replicas=2, per_replica=8, simulate=None))
    wait_for(lambda: phase(api_client, namespace, "again") == "Running", 60, what="Running")
    first = _gang(core, namespace, "again", 0, 2)
    for pod in first:
        _annotate_like_the_device_plugin(core, namespace, pod, list(range(8)))
    old = _completed(core, namespace, "again", 0)
    assert [s["server_id"] for s in old["server_list"]] == [_host_ip(p) for p in first], (
        "one replica per node: host IPs, as MindCluster's onePodOneNode rule")
    # Replica 1's trainer fails: the whole gang restarts as generation 1.
    core.patch_namespaced_pod(first[1].metadata.name, namespace,
                              {"metadata": {"annotations": {"suanli.io/simulate": "fail",
                                                            "suanli.io/simulate-after": "100ms"}}})
    wait_for(lambda: (get_job(api_client, namespace, "again").get("status") or {}).get("restarts") == 1, 60,
             what="one gang restart")
    wait_for(lambda: any(p.metadata.labels.get("suanli.io/generation") == "1"
                         for p in job_pods(core, namespace, "again")), 60, what="a pod of generation 1")
    # The table was reset before the new gang's first pod was created (needs the engine wiring; today's engine
    # resets it only on a later pod event).
    assert _table(core, namespace, "again")[1].get("generation") == "1"
    second = _gang(core, namespace, "again", 1, 2)
    for pod in second:
        init = pod.spec.init_containers[0]
        assert {e.name: e.value for e in init.env}["SUANLI_GENERATION"] == "1", "waits for its own generation"

    def reset() -> dict[str, Any] | None:
        table, data = _table(core, namespace, "again")
        return table if data.get("generation") == "1" else None

    table = wait_for(reset, 30, what="the table of generation 1")
    assert table == {"status": "initializing", "version": "1.0"}, "the previous gang's completed table is gone"
    for pod in second:
        _annotate_like_the_device_plugin(core, namespace, pod, list(range(8)))
    new = _completed(core, namespace, "again", 1)
    assert [s["container_ip"] for s in new["server_list"]] == [p.status.pod_ip for p in second]


def test_a_super_pod_gang_gets_a_1_2_table(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, cleanup: list[str]
) -> None:
    """Needs the engine to fill GangSlot.rank_table_schema = rank_table_schema(node.resource, node.labels)."""
    cleanup += _ascend_nodes(core, f"s{uuid.uuid4().hex[:5]}", 2, cards=16,
                             labels={"accelerator-type": "module-a3-16-super-pod",
                                     "huawei.com/topotree.superpodid": "7"})
    manifest = job_manifest("a3", ["huawei"], replicas=2, per_replica=16, simulate=None)
    manifest["spec"]["candidates"][0]["model"] = "Ascend910C"
    create_job(api_client, namespace, manifest)
    wait_for(lambda: phase(api_client, namespace, "a3") == "Running", 60, what="Running")
    pods = _gang(core, namespace, "a3", 0, 2)
    for pod in pods:
        _annotate_like_the_device_plugin(core, namespace, pod, list(range(16)), super_pod_id=7)
    table = _completed(core, namespace, "a3", 0)
    assert table["version"] == "1.2"
    assert table["super_pod_list"] == [{"super_pod_id": "7", "server_list": [
        {"server_id": s["server_id"]} for s in table["server_list"]]}]
    assert all("super_device_id" in d for s in table["server_list"] for d in s["device"])
