"""Launch environments per framework, checked against what the frameworks' own launchers and peers set.

Sources: MindCluster Ascend/mind-cluster component/ascend-operator/pkg/controllers/v1/env.go (setPytorchEnv,
setMindSporeEnv) and consts.go; Kubeflow kubeflow/training-operator pkg/controller.v1/pytorch/envvar.go
(setPodEnv: RANK = pod index); torchrun reads PET_<ARG> for its arguments (torch/distributed/run.py);
DeepSpeed deepspeedai/DeepSpeed deepspeed/launcher/runner.py (hostfile at /job/hostfile, --no_ssh needs every
node in it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from suanli.api import parse_job
from suanli.api.errors import SpecError
from suanli.render import GangSlot, build_pod

SLOTS = {
    "huawei": ("huawei.com/Ascend910", "img:cann"),
    "nvidia": ("nvidia.com/gpu", "img:cuda"),
}


def job(framework: str = "pytorch", per_replica: int = 8, candidates: list[str] | None = None, **spec: Any) -> Any:
    return parse_job({
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": "llama", "namespace": "team-a", "uid": "u-1"},
        "spec": {
            "replicas": 4,
            "acceleratorsPerReplica": per_replica,
            "framework": framework,
            "candidates": [{"vendor": v, "image": SLOTS[v][1]} for v in candidates or ["huawei"]],
            **spec,
        },
    })


def pod_for(j: Any, replica: int, vendor: str = "huawei") -> dict[str, Any]:
    resource, image = SLOTS[vendor]
    return build_pod(j, GangSlot(replica, f"n{replica}", resource, vendor, image), world=4, generation=0,
                     scheduler_name="suanli")


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("framework", ["pytorch", "mindspore", "deepspeed", "other"])
def test_every_framework_gets_the_torch_variables_with_mindcluster_meanings(framework: str) -> None:
    env = env_of(pod_for(job(framework), 2))
    # MindCluster setPytorchEnv: WORLD_SIZE = chips per pod x pods, LOCAL_WORLD_SIZE = chips per pod,
    # RANK = the pod's rank (its scripts run torchrun --node_rank $RANK), MASTER_ADDR/PORT.
    mindcluster = {"WORLD_SIZE": "32", "LOCAL_WORLD_SIZE": "8", "RANK": "2", "MASTER_PORT": "29500"}
    assert {k: env[k] for k in mindcluster} == mindcluster
    assert env["MASTER_ADDR"] == "llama-0.llama.team-a.svc"
    torchrun = {"PET_NNODES": "4", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "2",
                "PET_MASTER_ADDR": env["MASTER_ADDR"], "PET_MASTER_PORT": "29500"}
    assert {k: env[k] for k in torchrun} == torchrun
    ours = {"SUANLI_NNODES": "4", "SUANLI_NODE_RANK": "2", "SUANLI_NPROC_PER_NODE": "8",
            "SUANLI_WORLD_SIZE": "32", "SUANLI_FIRST_RANK": "16", "SUANLI_FRAMEWORK": framework}
    assert {k: env[k] for k in ours} == ours
    names = [e["name"] for e in pod_for(job(framework), 2)["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names)) and all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", n) for n in names)


def test_one_process_per_pod_matches_kubeflow_and_runs_without_a_launcher() -> None:
    env = env_of(pod_for(job(per_replica=1), 3, "nvidia"))
    # Kubeflow setPodEnv: RANK = pod index, WORLD_SIZE = pods; with one process per pod both equal ours.
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("3", "4", "0")


def test_mindspore_dynamic_networking_as_mindcluster_sets_it() -> None:
    j = job("mindspore")
    first, third = env_of(pod_for(j, 0)), env_of(pod_for(j, 2))
    # setMindSporeEnv: the scheduler's MS_SCHED_HOST is its own pod IP (downward API), the others its address.
    assert first["MS_SCHED_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert third["MS_SCHED_HOST"] == "llama-0.llama.team-a.svc"
    expected = {"MS_SCHED_PORT": "29500", "MS_WORKER_NUM": "32", "MS_LOCAL_WORKER": "8", "MS_NODE_RANK": "2",
                "MS_ROLE": "MS_WORKER", "MS_SERVER_NUM": "0"}
    assert {k: third[k] for k in expected} == expected
    assert third["RANK_TABLE_FILE"] == "/user/serverid/devindex/config/hccl.json"
    assert "DEVICE_NUM" not in third


def test_mindspore_rank_table_startup_gets_no_ms_role() -> None:
    env = env_of(pod_for(job("mindspore", mindsporeStartup="RankTable"), 1))
    assert not [k for k in env if k.startswith("MS_")], "MS_ROLE would switch MindSpore to dynamic networking"
    expected = {"RANK_TABLE_FILE": "/user/serverid/devindex/config/hccl.json", "RANK_SIZE": "32",
                "DEVICE_NUM": "8", "SERVER_ID": "1"}
    assert {k: env[k] for k in expected} == expected
    assert "RANK_ID" not in env, "per process, set by the launch script"
    single = env_of(pod_for(job("mindspore", per_replica=1, mindsporeStartup="RankTable"), 3))
    assert (single["RANK_ID"], single["DEVICE_ID"]) == ("3", "0"), "the runtime numbers the pod's NPU from 0"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"framework": "pytorch", "mindsporeStartup": "RankTable"}, "needs framework mindspore"),
        ({"framework": "mindspore", "mindsporeStartup": "RankTable",
          "candidates": [{"vendor": "nvidia", "image": "img:cuda"}]}, "only huawei candidates"),
        ({"framework": "mindspore", "mindsporeStartup": "Sometimes"}, "mindsporeStartup"),
        # A MindCluster job's rings-config volume would collide with the rank table the operator delivers.
        ({"template": {"volumes": [{"name": "ascend-910-config", "configMap": {"name": "rings-config-x"}}],
                       "volumeMounts": [{"name": "ascend-910-config",
                                         "mountPath": "/user/serverid/devindex/config/"}]}},
         "must not use /user/serverid/devindex/config"),
    ],
)
def test_launch_settings_that_cannot_work_are_refused_naming_the_field(spec: dict[str, Any], fragment: str) -> None:
    body = {"replicas": 1, "acceleratorsPerReplica": 1, "candidates": [{"vendor": "huawei", "image": "i"}], **spec}
    with pytest.raises(SpecError) as caught:
        parse_job({"apiVersion": "suanli.io/v1alpha1", "kind": "AITrainingJob", "metadata": {"name": "x"},
                   "spec": body})
    assert fragment in str(caught.value)


def test_deepspeed_gets_a_hostfile_at_its_default_path() -> None:
    p = pod_for(job("deepspeed"), 1, "nvidia")
    hostfile = p["metadata"]["annotations"]["suanli.io/deepspeed-hostfile"]
    # DeepSpeed's hostfile format: "<hostname> slots=<n>" per line; --no_ssh picks line --node_rank.
    lines = hostfile.splitlines()
    assert lines == [f"llama-{i}.llama.team-a.svc slots=8" for i in range(4)]
    volume = next(v for v in p["spec"]["volumes"] if v["name"] == "suanli-deepspeed-hostfile")
    assert volume["downwardAPI"]["items"] == [
        {"path": "hostfile", "fieldRef": {"fieldPath": "metadata.annotations['suanli.io/deepspeed-hostfile']"}}
    ]
    mounts = p["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "suanli-deepspeed-hostfile", "mountPath": "/job", "readOnly": True} in mounts
    assert "deepspeed-hostfile" not in str(pod_for(job("pytorch"), 1, "nvidia")), "only for DeepSpeed"


def test_deepspeed_hostfile_yields_to_a_user_volume_at_job() -> None:
    j = job("deepspeed", template={"volumes": [{"name": "job", "emptyDir": {}}],
                                   "volumeMounts": [{"name": "job", "mountPath": "/job"}]})
    p = pod_for(j, 0, "nvidia")
    assert [m["mountPath"] for m in p["spec"]["containers"][0]["volumeMounts"]] == ["/job"]
    assert "suanli.io/deepspeed-hostfile" not in p["metadata"]["annotations"]


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Set inside the examples' own scripts (loop variables, shell state), not expected from the pod's environment.
SCRIPT_LOCALS = {"i", "p", "pids", "!"}


@pytest.mark.parametrize(
    "name", ["mindcluster-migrated-pytorch.yaml", "mindspore-ascend.yaml", "mindspore-ranktable-ascend.yaml"]
)
def test_every_variable_an_example_launch_script_reads_is_set(name: str) -> None:
    body = yaml.safe_load((EXAMPLES / name).read_text())
    j = parse_job({**body, "metadata": {**body["metadata"], "namespace": "default", "uid": "u"}})
    world = j.spec.replicas
    for replica in range(world):
        candidate = j.spec.candidates[0]
        p = build_pod(j, GangSlot(replica, "n", "huawei.com/Ascend910", candidate.vendor, candidate.image),
                      world=world, generation=0, scheduler_name="suanli")
        container = p["spec"]["containers"][0]
        script = " ".join(container.get("command", []) + container.get("args", []))
        used = set(re.findall(r"\$\{?([A-Za-z_!][A-Za-z0-9_]*)", script))
        for arithmetic in re.findall(r"\$\(\((.*?)\)\)", script):  # $((SERVER_ID * DEVICE_NUM + i))
            used |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", arithmetic))
        used -= SCRIPT_LOCALS
        assert used, "the example should launch through the operator's variables"
        missing = used - {e["name"] for e in container["env"]}
        assert not missing, f"{name} replica {replica} reads unset {sorted(missing)}"
