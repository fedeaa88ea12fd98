"""bench/pod_shape.py's shapes, without a cluster: each is what it says, and each binds as e2e's groups do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import e2e  # noqa: E402
import pod_shape  # noqa: E402


def trainer_env(pod: dict) -> set[str]:  # type: ignore[type-arg]
    return {e["name"] for e in pod["spec"]["containers"][0].get("env") or []}


def test_each_shape_is_what_it_says() -> None:
    made = {shape: pod_shape.maker(shape, 8, 1)(0, 3, 1, "trivial") for shape in pod_shape.SHAPES}  # Ascend
    assert made["plain"] == e2e.plain_pod(0, 3, 1, "trivial")
    for shape, pod in made.items():
        meta = pod["metadata"]
        assert meta["name"] == "job-0000-3" and meta["labels"]["group"] == "job-0000", shape
        assert pod["spec"]["schedulerName"] == "trivial" and "ownerReferences" not in meta, shape
    full, shared = made["suanli-env"], made["suanli"]
    assert {"MASTER_ADDR", "RANK", "WORLD_SIZE", "HCCL_CONNECT_TIMEOUT"} <= trainer_env(full)
    assert trainer_env(shared) == {"RANK", "NODE_RANK", "PET_NODE_RANK", "SUANLI_NODE_RANK", "SUANLI_FIRST_RANK",
                                   "SERVER_ID", "RANK_ID"}, "the rest comes through envFrom"
    assert shared["spec"]["containers"][0]["envFrom"] == [{"configMapRef": {"name": "job-0000-launch"}}]
    assert trainer_env(made["no-env"]) == set() and made["no-env"]["spec"]["initContainers"]
    assert "initContainers" not in made["no-init"]["spec"] and trainer_env(made["no-init"]) == trainer_env(full)
    assert not [v for v in made["no-init"]["spec"]["volumes"] if v["name"].startswith("suanli-rank")]
    with pytest.raises(ValueError, match="unknown shape"):
        pod_shape.maker("square", 8, 1)
