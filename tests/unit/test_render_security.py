"""The securityContext of the pods Suanli renders: restricted by default, each key replaceable by the job."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.api import SpecError, parse_job
from suanli.render import GangSlot, build_pod
from suanli.render.security import CONTAINER_DEFAULT, POD_DEFAULT


def job(**template: Any) -> Any:
    return parse_job({
        "apiVersion": "suanli.io/v1alpha1", "kind": "AITrainingJob",
        "metadata": {"name": "llama", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {"replicas": 2, "acceleratorsPerReplica": 8,
                 "candidates": [{"vendor": "huawei", "model": "Ascend910B", "image": "img:ascend"}],
                 "template": {"command": ["torchrun"], **template}},
    })


def pod_of(j: Any) -> dict[str, Any]:
    slot = GangSlot(0, "node-1", "huawei.com/Ascend910", "huawei", "img:ascend")
    return build_pod(j, slot, world=2, generation=0, scheduler_name="suanli")


def test_default_is_pod_security_restricted() -> None:
    pod = pod_of(job())
    spec = pod["spec"]
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    # Every container, the trainer and nothing else here, drops every capability and cannot escalate.
    assert [c["securityContext"] for c in spec["containers"]] == [
        {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}]


def test_a_job_replaces_single_keys_and_keeps_the_rest() -> None:
    pod = pod_of(job(podSecurityContext={"runAsNonRoot": False, "fsGroup": 1000},
                     securityContext={"capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]}}))
    spec = pod["spec"]
    assert spec["securityContext"] == {"runAsNonRoot": False, "fsGroup": 1000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]}}


def test_rendering_never_mutates_the_defaults_or_the_job() -> None:
    j = job(securityContext={"capabilities": {"drop": ["ALL"]}})
    first = pod_of(j)
    first["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"].append("X")
    first["spec"]["securityContext"]["seccompProfile"]["type"] = "Unconfined"
    assert CONTAINER_DEFAULT["capabilities"] == {"drop": ["ALL"]}
    assert POD_DEFAULT["seccompProfile"] == {"type": "RuntimeDefault"}
    assert j.spec.template.security_context == {"capabilities": {"drop": ["ALL"]}}
    assert pod_of(j)["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("field", ["securityContext", "podSecurityContext"])
def test_a_security_context_that_is_not_an_object_is_refused_by_name(field: str) -> None:
    with pytest.raises(SpecError, match=f"template.{field}"):
        job(**{field: "privileged"})
