"""bench/transport.py without a cluster: every pod is created once and bound once, whatever the thread count,
and the template is never changed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import transport as bench_transport  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: list[str] = []
        self.bound: list[tuple[str, str]] = []

    def create(self, ns: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.created.append(body["metadata"]["name"])
        return body

    def bind(self, ns: str, pod: str, node: str) -> None:
        with self.lock:
            self.bound.append((pod, node))


@pytest.mark.parametrize("threads", [1, 7])
def test_each_pod_is_created_and_bound_once(threads: int) -> None:
    kube = Recorder()
    template = {"metadata": {"name": "t"}, "spec": {}}
    out = bench_transport.run(kube, template, 20, threads, "x")  # type: ignore[arg-type]
    assert sorted(kube.created) == sorted(f"x-{i}" for i in range(20))
    assert sorted(p for p, _ in kube.bound) == sorted(kube.created)
    assert template["metadata"]["name"] == "t"
    assert out["client_cpu_us_per_request"] >= 0 and out["wall_ms_per_request"] >= 0
