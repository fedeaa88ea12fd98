"""Invalid jobs are rejected by the Python models with errors that name the field and the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from suanli.api import AITrainingJobSpec, SpecError, parse_job, parse_job_spec, parse_object

DELETE = object()


def valid_job() -> dict[str, Any]:
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": "j", "namespace": "ns"},
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


def mutate(job: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or, with DELETE, remove) ``path`` like ``spec.candidates[0].vendor`` in a copy of ``job``."""
    job = copy.deepcopy(job)
    parts: list[str | int] = []
    for token in path.replace("]", "").split("."):
        name, *indexes = token.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes)
    target: Any = job
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return job


# (case id, {path: new value}, field the error must name, words the message must contain)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("replicas-zero", {"spec.replicas": 0}, "spec.replicas", "greater than or equal to 1"),
    ("replicas-string", {"spec.replicas": "four"}, "spec.replicas", "integer"),
    ("replicas-absurd", {"spec.replicas": 10**9}, "spec.replicas", "less than or equal to 10000"),
    ("replicas-missing", {"spec.replicas": DELETE}, "spec.replicas", "required"),
    (
        "replicas-numeric-string",
        {"spec.replicas": "4"},
        "spec.replicas",
        "integer",
    ),  # as strict as the server
    ("mixed-not-bool", {"spec.allowMixedVendors": "yes"}, "spec.allowMixedVendors", "boolean"),
    ("cards-too-many", {"spec.acceleratorsPerReplica": 65}, "spec.acceleratorsPerReplica", "64"),
    ("candidates-missing", {"spec.candidates": DELETE}, "spec.candidates", "required"),
    ("candidates-empty", {"spec.candidates": []}, "spec.candidates", "at least 1"),
    (
        "vendor-unknown",
        {"spec.candidates[1].vendor": "amd"},
        "spec.candidates[1].vendor",
        "'nvidia', 'huawei'",
    ),
    ("image-missing", {"spec.candidates[0].image": DELETE}, "spec.candidates[0].image", "required"),
    ("image-spaces", {"spec.candidates[0].image": "my image"}, "spec.candidates[0].image", "pattern"),
    ("memory-zero", {"spec.candidates[0].minMemoryGiB": 0}, "spec.candidates[0].minMemoryGiB", "1"),
    ("gang-too-big", {"spec.minReplicas": 5}, "spec.minReplicas", "lower minReplicas"),
    ("framework-unknown", {"spec.framework": "jax"}, "spec.framework", "pytorch"),
    ("level-unknown", {"spec.topology.required": "galaxy"}, "spec.topology.required", "rack"),
    ("preferred-wider", {"spec.topology.preferred": "region"}, "spec.topology.preferred", "no wider"),
    ("restarts-negative", {"spec.failurePolicy": {"maxRestarts": -1}}, "spec.failurePolicy.maxRestarts", "0"),
    (
        "restart-event-unknown",
        {"spec.failurePolicy": {"restartOn": ["Reboot"]}},
        "spec.failurePolicy.restartOn[0]",
        "PodFailed",
    ),
    (
        "restart-event-twice",
        {"spec.failurePolicy": {"restartOn": ["NodeLost", "NodeLost"]}},
        "spec.failurePolicy.restartOn[1]",
        "duplicate",
    ),
    ("priority-absurd", {"spec.priority": 5000}, "spec.priority", "1000"),
    ("ttl-negative", {"spec.ttlSecondsAfterFinished": -5}, "spec.ttlSecondsAfterFinished", "0"),
    ("port-too-high", {"spec.rendezvousPort": 70000}, "spec.rendezvousPort", "65535"),
    ("queue-not-dns", {"spec.queue": "Team_A"}, "spec.queue", "pattern"),
    (
        "candidate-twice",
        {"spec.candidates[1]": {"vendor": "huawei", "model": "ascend910b", "image": "x"}},
        "spec.candidates",
        "remove the duplicate",
    ),
    (
        "ascend910b-three-cards",
        {"spec.acceleratorsPerReplica": 3},
        "spec.acceleratorsPerReplica",
        "1, 2, 4 or 8",
    ),
    (
        "ascend910c-odd-cards",
        {"spec.candidates[0].model": "Ascend910C", "spec.acceleratorsPerReplica": 3},
        "spec.acceleratorsPerReplica",
        "even",
    ),
    (
        "env-both-sources",
        {"spec.template.env[0].valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        "spec.template.env[0].valueFrom",
        "not both",
    ),
    (
        "env-twice",
        {"spec.template.env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
        "spec.template.env[1]",
        "duplicate",
    ),
    (
        "mount-unknown-volume",
        {"spec.template.volumeMounts[0].name": "ckpt"},
        "spec.template.volumeMounts",
        "must name a volume",
    ),
    (
        "accelerator-in-resources",
        {"spec.template.resources.limits": {"huawei.com/Ascend910": 8}},
        "spec.template.resources",
        "set by the operator",
    ),
    (
        "quantity-garbage",
        {"spec.template.resources.requests.memory": "lots"},
        "spec.template.resources.requests.memory",
        "16Gi",
    ),
]


def apply(job: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for path, value in changes.items():
        job = mutate(job, path, value)
    return job


@pytest.mark.parametrize(("changes", "field", "words"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_job_names_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_job(apply(valid_job(), changes))
    assert field in caught.value.paths, str(caught.value)
    assert words.lower() in str(caught.value).lower()
    assert str(caught.value).startswith("invalid AITrainingJob ns/j:")


def test_the_base_job_is_valid() -> None:
    assert parse_job(valid_job()).spec.replicas == 4


def test_misspelt_field_gets_a_suggestion() -> None:
    job = mutate(valid_job(), "spec.minReplica", 2)
    with pytest.raises(SpecError, match=r"spec\.minReplica: unknown field — did you mean 'minReplicas'\?"):
        parse_job(job)


def test_all_problems_are_reported_at_once() -> None:
    job = mutate(mutate(valid_job(), "spec.replicas", 0), "spec.framework", "jax")
    with pytest.raises(SpecError) as caught:
        parse_job(job)
    assert {"spec.replicas", "spec.framework"} <= set(caught.value.paths)


def test_bare_spec_paths_start_at_spec() -> None:
    with pytest.raises(SpecError) as caught:
        parse_job_spec(
            {"replicas": 1, "acceleratorsPerReplica": 1, "candidates": [{"vendor": "x", "image": "i"}]}
        )
    assert caught.value.paths == ["spec.candidates[0].vendor"]


def test_non_object_input_is_rejected_clearly() -> None:
    with pytest.raises(SpecError, match="expected an object, got list"):
        parse_object(AITrainingJobSpec, [1, 2], root="spec")


@pytest.mark.parametrize("cards", [2, 4, 8, 16])
def test_ascend910c_takes_pairs(cards: int) -> None:
    job = mutate(
        mutate(valid_job(), "spec.candidates[0].model", "Ascend910C"), "spec.acceleratorsPerReplica", cards
    )
    job["spec"]["candidates"].pop(1)
    assert parse_job(job).spec.accelerators_per_replica == cards


@pytest.mark.parametrize(
    ("model", "cards"), [("910B3", 3), ("ascend910b4", 6), ("Ascend910_9392", 3), ("910c", 5)]
)
def test_card_rules_see_every_spelling_the_inventory_accepts(model: str, cards: int) -> None:
    job = mutate(mutate(valid_job(), "spec.candidates[0].model", model), "spec.acceleratorsPerReplica", cards)
    with pytest.raises(SpecError) as caught:
        parse_job(job)
    assert caught.value.paths == ["spec.acceleratorsPerReplica"]


def test_other_huawei_models_have_no_card_rule() -> None:
    job = mutate(
        mutate(valid_job(), "spec.candidates[0].model", "Ascend310P"), "spec.acceleratorsPerReplica", 3
    )
    assert parse_job(job).spec.accelerators_per_replica == 3
