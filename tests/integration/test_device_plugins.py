"""Device-plugin compatibility on the real control plane: nodes whose plugin would not admit or would mis-assign
Suanli's pods are refused at planning time, and the pending job says why.

The HAMi node is shaped as HAMi documents it (Project-HAMi/HAMi charts/hami/templates/scheduler/
device-configmap.yaml: resource huawei.com/Ascend910B3; pkg/device/ascend/device.go: hami.io/node-register-
<commonWord>). Needs the engine to append ``Inventory.skipped_summary(candidate vendors)`` to a pending job's
message (see the report of issue 14).
"""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from .conftest import wait_for
from .operator_harness import OperatorProcess, create_job, delete_nodes, get_job, job_manifest, job_pods


def _node(name: str, labels: dict[str, str], annotations: dict[str, str], resources: dict[str, str]) -> Any:
    allocatable = {"cpu": "192", "memory": "2048Gi", "pods": "110", **resources}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake", **annotations}},
        "spec": {},
        "status": {"capacity": dict(allocatable), "allocatable": dict(allocatable),
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_hami_and_volcano_mode_nodes_are_refused_with_the_reason_in_the_pending_message(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    core = client.CoreV1Api(api_client)
    prefix = f"d{uuid.uuid4().hex[:5]}"
    nodes = [
        _node(f"{prefix}-hami", {"ascend": "on", "accelerator": "huawei-Ascend910"},
              {"hami.io/node-register-Ascend910B3": "(device list)"},
              {"huawei.com/Ascend910B3": "32", "huawei.com/Ascend910B3-memory": "65536"}),
        _node(f"{prefix}-volcano", {"accelerator": "huawei-Ascend910", "accelerator-type": "module-910b-8",
                                    "suanli.io/device-plugin": "volcano"}, {}, {"huawei.com/Ascend910": "8"}),
    ]
    for item in nodes:
        item["metadata"]["labels"]["suanli-test/fleet"] = prefix
        core.create_node(item)
    try:
        manifest = job_manifest("refused", ["huawei"], replicas=1, per_replica=8, simulate=None)
        # Only this test's nodes, whatever other nodes the shared test cluster has.
        manifest["spec"]["template"]["nodeSelector"] = {"suanli-test/fleet": prefix}
        create_job(api_client, namespace, manifest)

        def pending_message() -> str | None:
            status = get_job(api_client, namespace, "refused").get("status") or {}
            message = str(status.get("message") or "")
            return message if status.get("phase") == "Pending" and f"{prefix}-hami" in message else None

        message = wait_for(pending_message, 60, what="a pending message naming the refused nodes")
        assert "is managed by HAMi" in message and f"{prefix}-volcano label suanli.io/device-plugin=volcano" in (
            message)
        assert not job_pods(core, namespace, "refused"), "no pod was created for the kubelet to reject"
    finally:
        client.CustomObjectsApi(api_client).delete_collection_namespaced_custom_object(
            "suanli.io", "v1alpha1", namespace, "aitrainingjobs")
        delete_nodes(core, [n["metadata"]["name"] for n in nodes])
