"""Fixtures for tests against a real control plane: etcd + kube-apiserver + kube-controller-manager + kwok.

The cluster starts once per test session in its own state directory and is torn down at the end, so no
process outlives the run. Set SUANLI_TEST_CLUSTER_DIR to the directory of a cluster started with
`hack/cluster up` to reuse it (it is then left running), which makes the edit-test loop take seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

import devcluster  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402

from .operator_harness import delete_nodes  # noqa: E402

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster() -> Iterator[devcluster.Cluster]:
    reuse = os.environ.get("SUANLI_TEST_CLUSTER_DIR")
    if reuse:
        yield devcluster.up(Path(reuse))
        return
    directory = ROOT / ".cache" / f"test-cluster-{os.getpid()}"
    t0 = time.monotonic()
    started = devcluster.up(directory, fresh=True)
    print(f"\ncontrol plane up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    try:
        yield started
    finally:
        devcluster.down(directory)
        subprocess.run(["rm", "-rf", str(directory)], check=False)


@pytest.fixture(scope="session")
def api_client(cluster: devcluster.Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def kubectl(cluster: devcluster.Cluster) -> Kubectl:
    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def crds_applied(kubectl: Kubectl) -> list[str]:
    """Apply every CRD in crds/ with server-side apply and wait until the API serves them."""
    files = sorted((ROOT / "crds").glob("*.yaml"))
    assert files, "crds/ is empty: run `make crds`"
    for f in files:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
    names = kubectl("get", "crd", "-o", "name").stdout.split()
    ours = [n for n in names if n.endswith(".suanli.io")]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *ours)
    return ours


NODE_LOST_GRACE_S = 6
"""The operator's NodeLost grace in these tests (60 s by default): long enough to see a gang outlive a node's
not-Ready moment, short enough to see it restart."""


@pytest.fixture(scope="module")
def operator(cluster: devcluster.Cluster, crds_applied: list[str]) -> Iterator[OperatorProcess]:
    """`suanli run` as a child process, one per test module (each module's jobs are its own)."""
    proc = OperatorProcess(cluster.kubeconfig, cluster.dir / f"operator-{uuid.uuid4().hex[:6]}.log",
                           env={"SUANLI_NODE_LOST_GRACE_SECONDS": str(NODE_LOST_GRACE_S)})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    # Jobs first: a namespace takes a while to terminate, and its jobs would meanwhile still be scheduled by
    # later modules' operators (their pods refused in a terminating namespace).
    client.CustomObjectsApi(api_client).delete_collection_namespaced_custom_object(
        "suanli.io", "v1alpha1", name, "aitrainingjobs"
    )
    core.delete_namespace(name, propagation_policy="Background")


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.2, what: str = "") -> Any:
    """Poll until predicate returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


def tear_down(api_client: client.ApiClient, namespace: str, nodes: list[str]) -> None:
    """After a test: delete the namespace's jobs, wait for their pods to go, then delete the test's nodes."""
    core = client.CoreV1Api(api_client)
    client.CustomObjectsApi(api_client).delete_collection_namespaced_custom_object(
        "suanli.io", "v1alpha1", namespace, "aitrainingjobs"
    )
    try:
        wait_for(lambda: not core.list_namespaced_pod(namespace).items, 60, what="the test's pods to go")
    finally:
        delete_nodes(core, nodes)
