"""The generated CRDs against a real kube-apiserver: accepted, examples valid, bad jobs refused by field.

Every invalid case is also fed to the Python models, so the API server (OpenAPI + CEL) and the
operator (pydantic) are checked to reject the same objects and blame the same field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.api import GROUP, VERSION, SpecError, parse_job, parse_node
from suanli.api.aitrainingjob import name_problem

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
PLURAL = "aitrainingjobs"
DELETE = object()


def valid_job(name: str = "job") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AITrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": 4,
            "acceleratorsPerReplica": 8,
            "candidates": [
                {"vendor": "huawei", "model": "Ascend910B", "image": "registry.example.com/t:ascend"},
                {"vendor": "nvidia", "model": "H100", "image": "registry.example.com/t:cuda"},
            ],
            "template": {
                "env": [{"name": "A", "value": "1"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": 8, "memory": "64Gi"}},
            },
            "topology": {"required": "zone", "preferred": "rack"},
        },
    }


def changed(job: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``job`` with each ``path`` (``spec.candidates[0].vendor``) set, or removed with DELETE."""
    job = copy.deepcopy(job)
    for path, value in changes.items():
        parts: list[str | int] = []
        for token in path.replace("]", "").split("."):
            name, *indexes = token.split("[")
            parts += [name, *(int(i) for i in indexes)]
        target: Any = job
        for part in parts[:-1]:
            target = target[part]
        if value is DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return job


# (case id, {path: value}, the field both the API server and the Python model must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("replicas-zero", {"spec.replicas": 0}, "spec.replicas"),
    ("replicas-string", {"spec.replicas": "four"}, "spec.replicas"),
    ("replicas-absurd", {"spec.replicas": 10**9}, "spec.replicas"),
    ("replicas-missing", {"spec.replicas": DELETE}, "spec.replicas"),
    ("cards-zero", {"spec.acceleratorsPerReplica": 0}, "spec.acceleratorsPerReplica"),
    ("cards-too-many", {"spec.acceleratorsPerReplica": 65}, "spec.acceleratorsPerReplica"),
    ("candidates-missing", {"spec.candidates": DELETE}, "spec.candidates"),
    ("candidates-empty", {"spec.candidates": []}, "spec.candidates"),
    ("candidates-not-a-list", {"spec.candidates": {"vendor": "nvidia"}}, "spec.candidates"),
    ("vendor-unknown", {"spec.candidates[1].vendor": "amd"}, "spec.candidates[1].vendor"),
    ("image-missing", {"spec.candidates[0].image": DELETE}, "spec.candidates[0].image"),
    ("image-spaces", {"spec.candidates[0].image": "my image"}, "spec.candidates[0].image"),
    ("model-too-long", {"spec.candidates[0].model": "A" * 64}, "spec.candidates[0].model"),
    ("memory-zero", {"spec.candidates[0].minMemoryGiB": 0}, "spec.candidates[0].minMemoryGiB"),
    ("gang-too-big", {"spec.minReplicas": 5}, "spec.minReplicas"),
    ("framework-unknown", {"spec.framework": "jax"}, "spec.framework"),
    ("mixed-not-bool", {"spec.allowMixedVendors": "yes"}, "spec.allowMixedVendors"),
    ("level-unknown", {"spec.topology.required": "galaxy"}, "spec.topology.required"),
    ("preferred-wider", {"spec.topology.preferred": "region"}, "spec.topology.preferred"),
    ("restarts-negative", {"spec.failurePolicy": {"maxRestarts": -1}}, "spec.failurePolicy.maxRestarts"),
    ("restarts-absurd", {"spec.failurePolicy": {"maxRestarts": 100000}}, "spec.failurePolicy.maxRestarts"),
    (
        "restart-event-unknown",
        {"spec.failurePolicy": {"restartOn": ["Reboot"]}},
        "spec.failurePolicy.restartOn[0]",
    ),
    (
        "restart-event-twice",
        {"spec.failurePolicy": {"restartOn": ["NodeLost", "NodeLost"]}},
        "spec.failurePolicy.restartOn[1]",
    ),
    ("priority-absurd", {"spec.priority": 5000}, "spec.priority"),
    ("ttl-negative", {"spec.ttlSecondsAfterFinished": -5}, "spec.ttlSecondsAfterFinished"),
    ("port-zero", {"spec.rendezvousPort": 0}, "spec.rendezvousPort"),
    ("port-too-high", {"spec.rendezvousPort": 70000}, "spec.rendezvousPort"),
    ("queue-not-dns", {"spec.queue": "Team_A"}, "spec.queue"),
    (
        "candidate-twice",
        {"spec.candidates[1]": {"vendor": "huawei", "model": "ascend910b", "image": "x"}},
        "spec.candidates",
    ),
    ("ascend910b-three-cards", {"spec.acceleratorsPerReplica": 3}, "spec.acceleratorsPerReplica"),
    (
        "ascend910c-odd-cards",
        {"spec.candidates[0].model": "Ascend910C", "spec.acceleratorsPerReplica": 3},
        "spec.acceleratorsPerReplica",
    ),
    (
        "env-both-sources",
        {"spec.template.env[0].valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        "spec.template.env[0].valueFrom",
    ),
    (
        "env-twice",
        {"spec.template.env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
        "spec.template.env[1]",
    ),
    ("mount-unknown-volume", {"spec.template.volumeMounts[0].name": "ckpt"}, "spec.template.volumeMounts"),
    (
        "accelerator-in-resources",
        {"spec.template.resources.limits": {"huawei.com/Ascend910": 8}},
        "spec.template.resources",
    ),
    (
        "quantity-garbage",
        {"spec.template.resources.requests.memory": "lots"},
        "spec.template.resources.requests.memory",
    ),
    ("replicas-numeric-string", {"spec.replicas": "4"}, "spec.replicas"),
    ("cpu-negative", {"spec.template.resources.requests.cpu": "-1"}, "spec.template.resources.requests.cpu"),
    ("cpu-negative-int", {"spec.template.resources.requests.cpu": -2}, "spec.template.resources.requests.cpu"),
    (
        "memory-absurd-exponent",
        {"spec.template.resources.requests.memory": "1e999999"},
        "spec.template.resources.requests.memory",
    ),
    (
        "ascend910b-short-spelling",
        {"spec.candidates[0].model": "910b3", "spec.acceleratorsPerReplica": 6},
        "spec.acceleratorsPerReplica",
    ),
]


def _create(
    api_client: client.ApiClient, namespace: str, body: dict[str, Any], dry_run: bool = False
) -> dict[str, Any]:
    api = client.CustomObjectsApi(api_client)
    kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, **kwargs)
    return cast(dict[str, Any], created)


def _message(exc: ApiException) -> str:
    """The API server's error message (which names each bad field)."""
    return str(json.loads(exc.body or "{}").get("message", exc.body))


def test_crds_are_accepted_and_established(crds_applied: list[str], kubectl: Any) -> None:
    crd = "customresourcedefinition.apiextensions.k8s.io"
    assert {f"{crd}/aitrainingjobs.suanli.io", f"{crd}/acceleratornodes.suanli.io"} <= set(crds_applied)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        # A schema the server silently trims (unknown fields, dropped keywords) shows up as a warning.
        proc = kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(path))
        assert "Warning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_accepted(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str, path: Path
) -> None:
    local = yaml.safe_load(path.read_text())
    stored = _create(api_client, namespace, local)
    # What the server stored (its defaults applied) means the same job to the operator.
    assert parse_job(stored).spec == parse_job(local).spec


def test_server_defaults_match_the_models(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str
) -> None:
    stored = _create(api_client, namespace, valid_job("defaults"))
    spec = stored["spec"]
    assert spec["failurePolicy"] == {
        "maxRestarts": 3,
        "restartOn": ["PodFailed", "NodeLost", "AcceleratorUnhealthy", "Preempted", "ReplicaLost"],
    }
    assert (spec["framework"], spec["rendezvousPort"], spec["priority"], spec["allowMixedVendors"]) == (
        "pytorch",
        29500,
        0,
        False,
    )
    assert "minReplicas" not in spec  # the gang size defaults to replicas in the operator, not the schema
    assert parse_job(stored).spec == parse_job(valid_job()).spec


def test_the_base_job_is_valid(crds_applied: list[str], api_client: client.ApiClient, namespace: str) -> None:
    _create(api_client, namespace, valid_job(), dry_run=True)


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_job_is_rejected_naming_the_field(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str, changes: dict[str, Any], field: str
) -> None:
    body = changed(valid_job(), changes)
    with pytest.raises(ApiException) as caught:
        _create(api_client, namespace, body, dry_run=True)
    assert caught.value.status == 422, caught.value.body
    message = _message(caught.value)
    assert f"{field}:" in message or f"{field}[" in message, message
    with pytest.raises(SpecError) as python_side:
        parse_job(body)
    assert any(p == field or p.startswith((f"{field}.", f"{field}[")) for p in python_side.value.paths), (
        f"the API server blames {field} but the Python model says: {python_side.value}"
    )


def test_cel_messages_reach_the_user(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(ApiException) as caught:
        _create(api_client, namespace, changed(valid_job(), {"spec.minReplicas": 9}), dry_run=True)
    message = _message(caught.value)
    assert (
        "minReplicas (the gang size) must not exceed replicas: lower minReplicas or raise replicas" in message
    )


@pytest.mark.parametrize("name", ["a.b", "x" * 53, "Upper", "9lives", "trailing-"])
def test_a_name_that_cannot_be_a_service_or_hostname_is_refused(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str, name: str
) -> None:
    with pytest.raises(ApiException) as caught:
        _create(api_client, namespace, valid_job(name), dry_run=True)
    assert caught.value.status == 422
    message = _message(caught.value)
    assert "metadata.name must be a DNS-1035 label of at most 52 characters" in message and "rename" in message
    assert name_problem(name) is not None, "the engine's twin of the rule agrees"


def test_the_longest_usable_name_is_accepted(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str
) -> None:
    _create(api_client, namespace, valid_job("x" * 52), dry_run=True)
    assert name_problem("x" * 52) is None


def test_status_is_a_subresource(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(api_client)
    created = _create(api_client, namespace, {**valid_job("st"), "status": {"phase": "Running"}})
    assert "phase" not in created.get("status", {})  # status in a create is ignored
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "st", {"status": {"phase": "Scheduling", "restarts": 1}}
    )
    got = cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "st"))
    assert (got["status"]["phase"], got["status"]["restarts"]) == ("Scheduling", 1)
    with pytest.raises(ApiException) as caught:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "st", {"status": {"phase": "Exploded"}}
        )
    assert "status.phase" in _message(caught.value)


def test_kubectl_get_shows_the_printer_columns(
    crds_applied: list[str], api_client: client.ApiClient, namespace: str, kubectl: Any
) -> None:
    api = client.CustomObjectsApi(api_client)
    job = changed(valid_job("shown"), {"spec.queue": "research"})
    _create(api_client, namespace, job)
    _create(api_client, namespace, valid_job("other"))
    api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "shown",
        {
            "status": {
                "phase": "Running",
                "vendor": "huawei",
                "model": "Ascend910B3",
                "readyReplicas": 4,
                "span": {"nodes": 4, "racks": 2, "zones": 1, "regions": 1},
                "reason": "AllReplicasReady",
            }
        },
    )
    out = kubectl("get", "aitj", "-n", namespace).stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "PHASE",
        "VENDOR",
        "MODEL",
        "REPLICAS",
        "READY",
        "RACKS",
        "RESTARTS",
        "AGE",
    ]
    shown = next(line.split() for line in out if line.startswith("shown"))
    assert shown[:8] == ["shown", "Running", "huawei", "Ascend910B3", "4", "4", "2", "0"]
    wide = kubectl("get", "aitj", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["QUEUE", "REASON", "AGE"]
    by_category = kubectl("get", "suanli", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(by_category) == ["aitrainingjob.suanli.io/other", "aitrainingjob.suanli.io/shown"]
    selected = kubectl(
        "get", "aitj", "-n", namespace, "--field-selector", "spec.queue=research", "-o", "name"
    )
    assert selected.stdout.split() == ["aitrainingjob.suanli.io/shown"]


def test_accelerator_node_round_trips(
    crds_applied: list[str], api_client: client.ApiClient, kubectl: Any
) -> None:
    api = client.CustomObjectsApi(api_client)
    name = "accn-test-node"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AcceleratorNode",
        "metadata": {"name": name},
        "spec": {"nodeName": name},
    }
    try:
        api.delete_cluster_custom_object(GROUP, VERSION, "acceleratornodes", name)
    except ApiException as exc:
        assert exc.status == 404
    api.create_cluster_custom_object(GROUP, VERSION, "acceleratornodes", body)
    try:
        status = {
            "vendor": "hygon",
            "model": "K100",
            "devices": [
                {"index": i, "vendor": "hygon", "model": "K100", "memoryMiB": 65536, "health": "Healthy",
                 "busId": f"0000:{i + 16:02x}:00.0", "numaNode": i // 4}
                for i in range(8)
            ],
            "totalDevices": 8,
            "healthyDevices": 8,
            "lastProbeTime": "2026-11-25T10:00:00Z",
        }  # fmt: skip
        stored = cast(
            dict[str, Any],
            api.patch_cluster_custom_object_status(
                GROUP, VERSION, "acceleratornodes", name, {"status": status}
            ),
        )
        assert parse_node(stored).status.healthy_devices == 8
        out = kubectl("get", "accn", name).stdout.splitlines()
        assert out[0].split() == ["NAME", "NODE", "VENDOR", "MODEL", "HEALTHY", "DEVICES", "AGE"]
        assert out[1].split()[:6] == [name, name, "hygon", "K100", "8", "8"]
        with pytest.raises(ApiException) as caught:
            api.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                "acceleratornodes",
                name,
                {"status": {"devices": [{"index": 0, "vendor": "amd"}]}},
            )
        assert "status.devices[0]" in _message(caught.value)
    finally:
        api.delete_cluster_custom_object(GROUP, VERSION, "acceleratornodes", name)
