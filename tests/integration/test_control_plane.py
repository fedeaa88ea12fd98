"""The test control plane behaves like a real cluster in the ways Suanli relies on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]


def fake_node(
    name: str, labels: dict[str, str] | None = None, allocatable: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Node that kwok manages (kwok.x-k8s.io/node=fake) with the given labels and allocatable."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", **(allocatable or {})}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {"taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]},
        "status": {"allocatable": resources, "capacity": resources},
    }


def test_the_api_server_reports_the_pinned_kubernetes_version(api_client: client.ApiClient) -> None:
    pinned = re.search(r"^require k8s.io/kubernetes (v[0-9.]+)$", (ROOT / "hack/tools/k8s/go.mod").read_text(), re.M)
    assert pinned is not None
    info = client.VersionApi(api_client).get_code()
    assert info.git_version == pinned.group(1), "hack/build-tools stamps the version (Helm checks kubeVersion)"
    assert (info.major, info.minor) == tuple(pinned.group(1)[1:].split(".")[:2])


def test_rbac_is_enforced(api_client: client.ApiClient, namespace: str, cluster: Any) -> None:
    """A ServiceAccount with no bindings is refused: RBAC authorization is really on."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    req = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    issued = core.create_namespaced_service_account_token("nobody", namespace, req)
    cfg = client.Configuration()
    cfg.host = cluster.server
    cfg.ssl_ca_cert = str(cluster.dir / "pki" / "ca.crt")
    cfg.api_key = {"authorization": f"Bearer {issued.status.token}"}
    with client.ApiClient(cfg) as restricted, pytest.raises(ApiException) as err:
        client.CoreV1Api(restricted).list_namespaced_pod(namespace)
    assert err.value.status == 403


def test_garbage_collector_cascades_owner_references(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, timeout=30, what="the garbage collector to delete the dependent")


def test_kwok_runs_fake_nodes_and_pods(api_client: client.ApiClient, namespace: str, kubectl: Kubectl) -> None:
    """kwok makes a fake node Ready, runs a pod bound to it, and finishes it on our simulate annotation."""
    core = client.CoreV1Api(api_client)
    node = f"kwok-{namespace}"
    core.create_node(fake_node(node))
    try:

        def ready() -> bool:
            conds = core.read_node(node).status.conditions or []
            return any(c.type == "Ready" and c.status == "True" for c in conds)

        wait_for(ready, timeout=30, what="kwok to mark the node Ready")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "annotations": {"suanli.io/simulate": "succeed", "suanli.io/simulate-after": "1s"},
            },
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "image": "example.invalid/none"}],
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
                "restartPolicy": "Never",
            },
        }
        core.create_namespaced_pod(namespace, pod)
        phases: list[str] = []

        def finished() -> bool:
            phase = core.read_namespaced_pod("p", namespace).status.phase
            if not phases or phases[-1] != phase:
                phases.append(phase)
            return phase == "Succeeded"

        wait_for(finished, timeout=30, what="the simulated pod to succeed")
        assert "Running" in phases or phases[0] == "Succeeded", phases
        assert "kwok" in kubectl("get", "node", node, "-o", "jsonpath={.metadata.annotations}").stdout
    finally:
        core.delete_node(node)
