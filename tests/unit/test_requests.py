"""One AITrainingJob → one GangRequest: the fields the planner filters and prefers on."""

from __future__ import annotations

from suanli.api import parse_job
from suanli.controller.requests import gang_request
from suanli.placement import Candidate, Toleration
from suanli.topology import Level


def test_template_selector_tolerations_and_restart_history_reach_the_planner() -> None:
    job = parse_job({
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {
            "replicas": 4, "minReplicas": 2, "acceleratorsPerReplica": 8,
            "candidates": [{"vendor": "huawei", "model": "Ascend910B", "image": "a", "minMemoryGiB": 64}],
            "topology": {"required": "zone", "preferred": "rack"},
            "template": {
                "nodeSelector": {"pool": "training", "arch": "arm64"},
                "tolerations": [{"key": "dedicated", "value": "training", "effect": "NoSchedule"},
                                {"operator": "Exists"}],
                "resources": {"requests": {"cpu": "16", "memory": "64Gi"}},
            },
        },
        "status": {"phase": "Restarting", "badNodes": ["n3"], "previousNodes": ["n1", "n3"]},
    })
    request = gang_request(job)
    assert (request.key, request.replicas, request.min_replicas) == ("ns/j", 4, 2)
    assert request.candidates == (Candidate("huawei", "Ascend910B", 64.0),)
    assert (request.required_level, request.preferred_level) == (Level.ZONE, Level.RACK)
    assert (request.cpu_millis, request.memory_bytes) == (16000, 64 * 2**30)
    assert request.node_selector == (("arch", "arm64"), ("pool", "training"))
    assert request.tolerations == (Toleration("dedicated", False, "training", "NoSchedule"), Toleration("", True))
    assert request.avoid_nodes == {"n3"} and request.near_nodes == {"n1", "n3"}
