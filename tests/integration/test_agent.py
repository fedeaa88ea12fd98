"""`suanli agent --once` as a real process against a real API server, on kwok nodes and fixture sysfs trees.

The fake vendor libraries of tests/kernels play the drivers: healthy, a lost card, alarms. Asserts on
what the API server stores: node labels and taints, the AcceleratorNode, Events, garbage collection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.api import ConditionStatus, DeviceHealth, parse_node

from ..unit.test_agent_support import FAKE_ENV, FIXTURES, fake_vendor_libs, fixture_bdfs, kernels_library, subset_tree
from .conftest import wait_for
from .operator_harness import delete_nodes
from .test_control_plane import fake_node

ROOT = Path(__file__).resolve().parents[2]
TAINT = {"key": "suanli.io/unhealthy", "value": "true", "effect": "NoSchedule"}
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
OURS = "suanli.io/accelerator."


@pytest.fixture(scope="module")
def libs() -> dict[str, Path]:
    kernels_library()
    return fake_vendor_libs()


@pytest.fixture
def node(core: client.CoreV1Api, crds_applied: list[str], request: pytest.FixtureRequest) -> Iterator[str]:
    """A kwok node with 8 cards of the vendor the test names (`@pytest.mark.parametrize('resource', ...)`)."""
    resource, count = getattr(request, "param", ("nvidia.com/gpu", "8"))
    name = f"agent-{uuid.uuid4().hex[:8]}"
    body = fake_node(name, labels={"team": "vision", "suanli.io/rack": "r7"}, allocatable={resource: count})
    core.create_node(body)  # type: ignore[arg-type]  # the client sends dicts as they are
    yield name
    delete_nodes(core, [name])


def run_agent(
    cluster: Any, node: str, sysfs: Path, libs: Path | None, bench: str = "none", **fake: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in FAKE_ENV}
    env |= {"KUBECONFIG": str(cluster.kubeconfig), "PYTHONPATH": str(ROOT / "operator"), **fake}
    cmd = [sys.executable, "-m", "suanli", "agent", "--once", "--node-name", node, "--sysfs-root", str(sysfs),
           "--bench", bench, "--bench-budget", "0.05"]
    if libs is not None:
        cmd += ["--lib-path", str(libs)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"agent exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc


def raw(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def read_node(core: client.CoreV1Api, node: str) -> dict[str, Any]:
    return raw(core.read_node(node, _preload_content=False))


def all_labels(core: client.CoreV1Api, node: str) -> dict[str, str]:
    labels: dict[str, str] = read_node(core, node)["metadata"].get("labels") or {}
    return labels


def our_labels(core: client.CoreV1Api, node: str) -> dict[str, str]:
    return {k: v for k, v in all_labels(core, node).items() if k.startswith(OURS)}


def taints(core: client.CoreV1Api, node: str) -> list[dict[str, str]]:
    return [{k: t[k] for k in ("key", "value", "effect")} for t in read_node(core, node)["spec"].get("taints") or []]


def record(api_client: client.ApiClient, node: str) -> dict[str, Any]:
    return raw(client.CustomObjectsApi(api_client).get_cluster_custom_object(
        "suanli.io", "v1alpha1", "acceleratornodes", node, _preload_content=False
    ))


def events(core: client.CoreV1Api, node: str) -> list[tuple[str, str, str]]:
    found = raw(core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={node}", _preload_content=False
    ))["items"]
    return [(e["reason"], e["type"], e["message"])
            for e in sorted(found, key=lambda e: (e["metadata"]["creationTimestamp"], e["lastTimestamp"]))
            if e["reason"].startswith("Accelerator")]


def test_h100_node_labels_record_and_a_lost_card(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, node: str, libs: dict[str, Path]
) -> None:
    ok(run_agent(cluster, node, FIXTURES / "h100-8", libs["healthy"]))
    labels = all_labels(core, node)
    assert {k: v for k, v in labels.items() if k.startswith(OURS)} == {
        "suanli.io/accelerator.vendor": "nvidia",
        "suanli.io/accelerator.model": "H100",
        "suanli.io/accelerator.count": "8",
        "suanli.io/accelerator.memory-mib": "81920",
        "suanli.io/accelerator.healthy": "8",
        "suanli.io/accelerator.link-domains": "1x8",
    }
    assert labels["team"] == "vision" and labels["suanli.io/rack"] == "r7", "others' labels untouched"
    assert taints(core, node) == [KWOK_TAINT]

    obj = record(api_client, node)
    node_uid = read_node(core, node)["metadata"]["uid"]
    assert obj["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
    ]
    stored = parse_node(obj)
    assert stored.spec.node_name == node
    assert (stored.status.vendor, stored.status.model) == ("nvidia", "H100")
    assert (stored.status.total_devices, stored.status.healthy_devices) == (8, 8)
    assert [d.bus_id for d in stored.status.devices] == fixture_bdfs("h100-8", "0x10de")
    assert {d.link_domain for d in stored.status.devices} == {"nvlink-0"}
    assert stored.status.last_probe_time is not None
    assert {c.type: c.status for c in stored.status.conditions} == {
        "Probed": ConditionStatus.TRUE, "Healthy": ConditionStatus.TRUE, "Benchmarked": ConditionStatus.UNKNOWN
    }
    assert "580.65.06" in obj["metadata"]["annotations"]["suanli.io/versions"]
    assert events(core, node) == []

    ok(run_agent(cluster, node, FIXTURES / "h100-8", libs["healthy"], SUANLI_FAKE_FAIL_BDF="0000:3a:00.0"))
    assert our_labels(core, node)["suanli.io/accelerator.healthy"] == "7"
    # The lost GPU leaves NVLink domains of 7 and 1, written with the label-safe separator.
    assert our_labels(core, node)["suanli.io/accelerator.link-domains"] == "7_1"
    assert taints(core, node) == [KWOK_TAINT], "7 usable cards: the node stays open"
    stored = parse_node(record(api_client, node))
    lost = next(d for d in stored.status.devices if d.bus_id == "0000:3a:00.0")
    assert lost.health == DeviceHealth.UNHEALTHY
    [(reason, kind, message)] = events(core, node)
    assert (reason, kind) == ("AcceleratorUnhealthy", "Warning")
    assert "0000:3a:00.0" in message and "GPU is lost" in message and "7 of 8 cards usable" in message

    # The record goes with its Node: the garbage collector follows the owner reference.
    core.delete_node(node)

    def collected() -> bool:
        try:
            record(api_client, node)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(collected, timeout=30, what="the AcceleratorNode to be garbage-collected with its Node")


def test_library_failure_is_unknown_and_changes_nothing(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, node: str, libs: dict[str, Path]
) -> None:
    ok(run_agent(cluster, node, FIXTURES / "h100-8", libs["healthy"]))
    ok(run_agent(cluster, node, FIXTURES / "h100-8", libs["init_fails"]))
    labels = our_labels(core, node)
    assert labels["suanli.io/accelerator.healthy"] == "8" and taints(core, node) == [KWOK_TAINT]
    assert "suanli.io/accelerator.memory-mib" not in labels, "unknown facts fall back to the datasheet"
    stored = parse_node(record(api_client, node))
    healthy = next(c for c in stored.status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.UNKNOWN, "HealthUnknown")
    assert [(r, t) for r, t, _ in events(core, node)] == [("AcceleratorHealthUnknown", "Warning")]

    # No kernels library at all: the probe fails, labels stay, the record says why.
    proc = run_agent(cluster, node, FIXTURES / "h100-8", libs["healthy"],
                     SUANLI_KERNELS_LIB=str(ROOT / "build" / "no-such" / "libsuanli_kernels.so"))
    assert proc.returncode == 1 and "probe failed" in proc.stderr
    assert our_labels(core, node) == labels
    stored = parse_node(record(api_client, node))
    probed = next(c for c in stored.status.conditions if c.type == "Probed")
    assert (probed.status, probed.reason) == (ConditionStatus.FALSE, "ProbeFailed")
    assert stored.status.total_devices == 8, "the last good probe's devices are kept"


@pytest.mark.parametrize("node", [("huawei.com/Ascend910", "2")], indirect=True)
def test_all_cards_unhealthy_taints_until_recovered(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, node: str, libs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A two-NPU node: one card lost, the other in a major alarm; then both healthy again."""
    tree = subset_tree("ascend910b-8", 2, "0x19e5", tmp_path)
    first, second = fixture_bdfs("ascend910b-8", "0x19e5")[:2]
    driver = {"SUANLI_FAKE_BDFS": f"{first},{second}", "SUANLI_FAKE_NPUS": "2"}

    # Healthy, with the bandwidth measured through the (fake) ACL runtime: auto picks the vendor's backend.
    ok(run_agent(cluster, node, tree, libs["healthy"], bench="auto", **driver))
    labels = our_labels(core, node)
    assert labels["suanli.io/accelerator.model"] == "Ascend910B"
    assert (labels["suanli.io/accelerator.count"], labels["suanli.io/accelerator.healthy"]) == ("2", "2")
    assert float(labels["suanli.io/accelerator.membw-gbs"]) > 0
    stored = parse_node(record(api_client, node))
    bench = next(c for c in stored.status.conditions if c.type == "Benchmarked")
    assert (bench.status, bench.reason) == (ConditionStatus.TRUE, "Measured") and bench.message.startswith("ascend")
    assert all(d.throughput and d.throughput.memory_bandwidth_gbps for d in stored.status.devices)

    ok(run_agent(cluster, node, tree, libs["healthy"], SUANLI_FAKE_FAIL_BDF=first, SUANLI_FAKE_ALARM_BDF=second,
                 **driver))
    assert our_labels(core, node)["suanli.io/accelerator.healthy"] == "0"
    assert taints(core, node) == [KWOK_TAINT, TAINT]
    stored = parse_node(record(api_client, node))
    healthy = next(c for c in stored.status.conditions if c.type == "Healthy")
    assert (healthy.status, healthy.reason) == (ConditionStatus.FALSE, "AllUnhealthy")
    assert stored.status.healthy_devices == 0
    assert all(d.throughput for d in stored.status.devices), "not measured this run: the last numbers stay"
    assert float(our_labels(core, node)["suanli.io/accelerator.membw-gbs"]) > 0

    ok(run_agent(cluster, node, tree, libs["healthy"], **driver))
    assert our_labels(core, node)["suanli.io/accelerator.healthy"] == "2"
    assert taints(core, node) == [KWOK_TAINT], "taint removed, kwok's kept"
    reasons = [(r, t) for r, t, _ in events(core, node)]
    assert reasons == [("AcceleratorUnhealthy", "Warning"), ("AcceleratorRecovered", "Normal")]
    messages = [m for _, _, m in events(core, node)]
    assert "tainted the node suanli.io/unhealthy=true:NoSchedule" in messages[0]
    assert "removed the node's suanli.io/unhealthy taint" in messages[1]


def test_node_without_accelerators_loses_our_labels(
    cluster: Any, core: client.CoreV1Api, node: str, libs: dict[str, Path]
) -> None:
    ok(run_agent(cluster, node, FIXTURES / "dcu-8", libs["healthy"],
                 SUANLI_FAKE_BDFS=",".join(fixture_bdfs("dcu-8", "0x1d94"))))
    assert our_labels(core, node)["suanli.io/accelerator.link-domains"] == "2x4"
    ok(run_agent(cluster, node, FIXTURES / "cpu-only", libs["healthy"]))
    labels = all_labels(core, node)
    assert not any(k.startswith(OURS) for k in labels)
    assert labels["team"] == "vision" and labels["suanli.io/rack"] == "r7"


def test_unknown_node_is_a_clear_error(cluster: Any, crds_applied: list[str], libs: dict[str, Path]) -> None:
    proc = run_agent(cluster, "no-such-node", FIXTURES / "h100-8", libs["healthy"])
    assert proc.returncode == 1
    assert "node 'no-such-node' not found: pass the node's name with --node-name" in proc.stderr
