"""Per-vendor rendering: one job, three vendors' pods, with no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.api import parse_job
from suanli.render import GangSlot, build_pod, build_service, pod_name, spec_hash

RESOURCES = {"huawei": "huawei.com/Ascend910", "nvidia": "nvidia.com/gpu", "hygon": "hygon.com/hcu"}


def job(**spec: Any) -> Any:
    return parse_job({
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": "llama", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {
            "replicas": 4,
            "acceleratorsPerReplica": 8,
            "candidates": [
                {"vendor": "huawei", "model": "Ascend910B", "image": "img:ascend"},
                {"vendor": "nvidia", "model": "H100", "image": "img:cuda"},
                {"vendor": "hygon", "image": "img:dtk"},
            ],
            "template": {
                "command": ["torchrun"],
                "args": ["train.py"],
                "env": [{"name": "MASTER_PORT", "value": "12345"}, {"name": "EPOCHS", "value": "3"}],
                "resources": {"requests": {"cpu": 16, "memory": "64Gi"}},
            },
            **spec,
        },
    })


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(("vendor", "backend"), [("huawei", "HCCL"), ("nvidia", "NCCL"), ("hygon", "RCCL")])
def test_same_job_renders_for_each_vendor(vendor: str, backend: str) -> None:
    slot = GangSlot(2, "node-7", RESOURCES[vendor], vendor, f"img:{vendor}", "1")
    pod = build_pod(job(), slot, world=4, generation=3, scheduler_name="suanli", tolerate={RESOURCES[vendor]})
    assert pod["metadata"]["name"] == pod_name("llama", 3, 2) == "llama-g3-2"
    spec = pod["spec"]
    assert spec["schedulerName"] == "suanli" and "nodeName" not in spec, "bound later through Binding"
    assert spec["restartPolicy"] == "Never"
    assert spec["hostname"] == "llama-2" and spec["subdomain"] == "llama"
    container = spec["containers"][0]
    assert container["image"] == f"img:{vendor}"
    assert container["resources"]["limits"] == {RESOURCES[vendor]: "8"}
    assert container["resources"]["requests"] == {"cpu": "16", "memory": "64Gi", RESOURCES[vendor]: "8"}, (
        "a bare YAML number becomes a quantity string"
    )
    env = env_of(pod)
    assert env["SUANLI_COLLECTIVE_BACKEND"] == backend
    # The container runtime already numbers the pod's cards from 0: no *_VISIBLE_DEVICES=0..n-1 (CANN documents
    # ASCEND_RT_VISIBLE_DEVICES as a trial setting that disables profiling, DCMI and hccn_tool).
    assert not {"ASCEND_RT_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"} & set(env)
    # RANK is the pod's node rank (MindCluster and Kubeflow); WORLD_SIZE counts processes (MindCluster, torch).
    assert env["WORLD_SIZE"] == "32" and env["RANK"] == "2" and env["LOCAL_WORLD_SIZE"] == "8"
    assert "LOCAL_RANK" not in env, "8 processes per pod: the launcher sets each one's local rank"
    assert env["SUANLI_FIRST_RANK"] == "16" and env["SUANLI_NODE_RANK"] == "2" and env["SUANLI_GENERATION"] == "3"
    assert env["PET_NNODES"] == "4" and env["PET_NPROC_PER_NODE"] == "8" and env["PET_NODE_RANK"] == "2"
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "llama-0.llama.team-a.svc"
    assert env["MASTER_PORT"] == "12345", "the user's env wins over ours"
    assert env["EPOCHS"] == "3"
    assert [e["name"] for e in container["env"]].count("MASTER_PORT") == 1
    assert pod["metadata"]["annotations"]["suanli.io/planned-node"] == "node-7"
    assert pod["metadata"]["annotations"]["suanli.io/link-domain"] == "1"
    owner = pod["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "AITrainingJob" and owner["uid"] == "u-1" and owner["controller"] is True
    assert {"key": RESOURCES[vendor], "operator": "Exists"} in spec["tolerations"], "the taints the planner allows"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert ("/user/serverid/devindex/config" in mounts) == (vendor == "huawei")
    if vendor == "huawei":
        assert env["RANK_TABLE_FILE"] == "/user/serverid/devindex/config/hccl.json"
        assert env["RANK_SIZE"] == "32"


def test_service_is_headless_and_publishes_unready_ranks() -> None:
    svc = build_service(job(rendezvousPort=23456))
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"suanli.io/job": "llama"}
    assert svc["spec"]["ports"][0]["port"] == 23456


def test_spec_hash_ignores_scheduling_only_fields() -> None:
    assert spec_hash(job()) == spec_hash(job(priority=100, queue="team-a", ttlSecondsAfterFinished=60))
    assert spec_hash(job()) != spec_hash(job(replicas=5))


def test_spec_hash_is_blind_to_fields_left_at_their_defaults() -> None:
    """A release that adds an optional field must not make every running gang look changed."""
    template = job().spec.template.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert spec_hash(job()) == spec_hash(job(template={**template, "securityContext": None}, failurePolicy={}))
    assert spec_hash(job()) != spec_hash(job(template={**template, "securityContext": {"runAsUser": 1000}}))


def _effective_env(pod: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What the kubelet gives the trainer: its envFrom ConfigMaps in order, then its env over them."""
    trainer = pod["spec"]["containers"][0]
    out: dict[str, Any] = {}
    for source in trainer.get("envFrom") or []:
        out.update(config_maps[source["configMapRef"]["name"]])
    out.update({e["name"]: e.get("value", e.get("valueFrom")) for e in trainer.get("env") or []})
    return out


@pytest.mark.parametrize("shape", ["one vendor", "ascend, one card", "mixed", "mindspore", "one replica"])
def test_shared_launch_variables_give_every_pod_exactly_its_own_environment(shape: str) -> None:
    """The launch variables all replicas have alike go to one ConfigMap (envFrom); each pod keeps what is its
    own. Whatever the gang, each trainer ends up with exactly the environment build_pod gives it, the user's
    own variables (MASTER_PORT here) still winning."""
    from suanli.controller.slots import render_gang
    from suanli.render.gang import launch_config_map_name
    from suanli.settings import OperatorSettings

    spec: dict[str, Any] = {}
    vendors = ["nvidia"] * 4
    if shape == "ascend, one card":
        spec, vendors = {"acceleratorsPerReplica": 1}, ["huawei"] * 4
    elif shape == "mixed":
        spec, vendors = {"allowMixedVendors": True}, ["nvidia", "nvidia", "huawei", "hygon"]
    elif shape == "mindspore":
        spec, vendors = {"framework": "mindspore", "candidates": [
            {"vendor": "huawei", "model": "Ascend910B", "image": "img:ascend"}]}, ["huawei"] * 4
    elif shape == "one replica":
        spec, vendors = {"replicas": 1}, ["nvidia"]
    j = job(**spec)
    slots = [GangSlot(i, f"node-{i}", RESOURCES[v], v, f"img:{v}", "0") for i, v in enumerate(vendors)]
    gang = render_gang(j, slots, OperatorSettings())
    full = [build_pod(j, s, world=len(slots), generation=0, scheduler_name="suanli",
                      tolerate=OperatorSettings().inventory.tolerated_taints, rank_table=len(set(vendors)) == 1)
            for s in slots]
    maps = {launch_config_map_name("llama"): gang.launch_env}
    for pod, whole in zip(gang.pods, full, strict=True):
        assert _effective_env(pod, maps) == _effective_env(whole, {}), pod["metadata"]["name"]
        assert _effective_env(pod, maps)["MASTER_PORT"] == "12345", "the user's variable wins"
        inline = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
        assert not inline & set(gang.launch_env), "nothing both inline and shared"
    if shape == "one vendor":
        inline = {e["name"] for e in gang.pods[1]["spec"]["containers"][0]["env"]}
        assert inline == {"RANK", "NODE_RANK", "PET_NODE_RANK", "SUANLI_NODE_RANK", "SUANLI_FIRST_RANK",
                          "MASTER_PORT", "EPOCHS"}, "the per-replica variables and the user's"
        assert "MASTER_PORT" not in gang.launch_env, "the user's variables are never moved"
    if shape == "mixed":
        assert "SUANLI_COLLECTIVE_BACKEND" not in gang.launch_env, "it differs per vendor: on each pod"


TOLERATED = frozenset({"nvidia.com/gpu", "huawei.com/Ascend910", "huawei.com/npu", "hygon.com/dcu", "hygon.com/hcu",
                       "dedicated"})


@pytest.mark.parametrize(("vendor", "resource", "carried", "expected"), [
    # Its own vendor's keys (a taint the device plugin adds later must not evict it) and the admin's own key.
    ("nvidia", "nvidia.com/gpu", (), ["dedicated", "nvidia.com/gpu"]),
    ("huawei", "huawei.com/Ascend910", (), ["dedicated", "huawei.com/Ascend910", "huawei.com/npu"]),
    ("hygon", "hygon.com/hcu", (), ["dedicated", "hygon.com/dcu", "hygon.com/hcu"]),
    # Another vendor's taint on the node itself (a mixed node) is tolerated: the planner put the pod there.
    ("huawei", "huawei.com/Ascend910", ("nvidia.com/gpu",),
     ["dedicated", "huawei.com/Ascend910", "huawei.com/npu", "nvidia.com/gpu"]),
])
def test_pods_tolerate_their_vendors_and_their_nodes_taints_not_other_vendors(
    vendor: str, resource: str, carried: tuple[str, ...], expected: list[str]
) -> None:
    slot = GangSlot(0, "node-1", resource, vendor, "img", None, node_taint_keys=carried)
    pod = build_pod(job(), slot, world=4, generation=0, scheduler_name="suanli", tolerate=TOLERATED)
    ours = [t for t in pod["spec"]["tolerations"] if t.get("operator") == "Exists" and "effect" not in t]
    assert [t["key"] for t in ours] == expected


def test_a_template_toleration_is_kept_beside_the_operators() -> None:
    spec_job = job(template={"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]})
    slot = GangSlot(0, "node-1", "huawei.com/Ascend910", "huawei", "img", None)
    pod = build_pod(spec_job, slot, world=4, generation=0, scheduler_name="suanli", tolerate=TOLERATED)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"], (
        "the user's own toleration of another vendor's taint reaches the pod as written"
    )
