"""The health gate end to end: `suanli agent --once` with the fake GPU backend against a real API server,
and the operator as a real process restarting the gang that sat on a card that failed verification.

The fake backend (tests/kernels/fakes/fake_gpu_backend.c) stands in for the CUDA module; the kernels
library, the child processes and the agent are the real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

from suanli.api import DeviceHealth, parse_node

from ..unit.test_agent_support import FAKE_ENV, FIXTURES, fake_gpu_backend_dir, fake_vendor_libs, kernels_library
from .conftest import tear_down, wait_for
from .operator_harness import (
    OperatorProcess,
    create_job,
    delete_nodes,
    get_job,
    job_manifest,
    make_fleet,
    phase,
    restarted_away,
)
from .test_agent import events, our_labels, record
from .test_control_plane import fake_node

ROOT = Path(__file__).resolve().parents[2]


def run_agent(cluster: Any, node: str, *args: str, **fake: str) -> subprocess.CompletedProcess[str]:
    """One agent run on the H100 fixture with eight fake CUDA devices; `fake` picks their faults."""
    kernels_library()
    env = {k: v for k, v in os.environ.items() if k not in FAKE_ENV}
    env |= {"KUBECONFIG": str(cluster.kubeconfig), "PYTHONPATH": str(ROOT / "operator"),
            "SUANLI_BACKEND_DIR": str(fake_gpu_backend_dir()), "SUANLI_FAKE_GPUS": "8", **fake}
    cmd = [sys.executable, "-m", "suanli", "agent", "--once", "--node-name", node,
           "--sysfs-root", str(FIXTURES / "h100-8"), "--lib-path", str(fake_vendor_libs()["healthy"]),
           "--bench", "auto", "--bench-budget", "0.05", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"agent exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc


def test_card_failing_verification_is_taken_out_and_its_gang_restarts_elsewhere(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, operator: OperatorProcess
) -> None:
    fleet = make_fleet(core, f"h{uuid.uuid4().hex[:5]}", ["nvidia"], racks=1, nodes_per_rack=3)
    try:
        create_job(api_client, namespace, job_manifest("sdc", ["nvidia"], replicas=2, simulate=None))
        wait_for(lambda: phase(api_client, namespace, "sdc") == "Running", 60, what="Running")
        victim = get_job(api_client, namespace, "sdc")["status"]["placement"][1]["node"]

        run_agent(cluster, victim, SUANLI_FAKE_GPU_CORRUPT="3")

        assert our_labels(core, victim)["suanli.io/accelerator.healthy"] == "7"
        stored = parse_node(record(api_client, victim))
        card = stored.status.devices[3]
        assert (card.health, card.health_reason) == (DeviceHealth.UNHEALTHY, "DataCorruption")
        assert stored.status.healthy_devices == 7
        healthy = next(c for c in stored.status.conditions if c.type == "Healthy")
        assert healthy.reason == "DataCorruption" and card.bus_id in healthy.message
        [(reason, kind, message)] = events(core, victim)
        assert (reason, kind) == ("AcceleratorDataCorruption", "Warning")
        assert "fma verification failed" in message and "7 of 8 cards usable" in message

        wait_for(lambda: restarted_away(api_client, namespace, "sdc", victim), 60,
                 what="a restart away from the node with the corrupting card")
        status = get_job(api_client, namespace, "sdc")["status"]
        restarted = [c for c in status["conditions"] if c["type"] == "Restarting"]
        assert restarted and restarted[0]["reason"] == "AcceleratorUnhealthy"
    finally:
        tear_down(api_client, namespace, fleet)


def test_slow_hung_and_crashing_cards_are_degraded_and_the_agent_finishes(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, crds_applied: list[str]
) -> None:
    name = f"gate-{uuid.uuid4().hex[:8]}"
    core.create_node(fake_node(name, allocatable={"nvidia.com/gpu": "8"}))  # type: ignore[arg-type]
    try:
        # 15 s: eight Python children start at once on a shared 2-CPU test machine; a healthy child
        # finishes in about a second, the hung one is killed at the limit.
        proc = run_agent(cluster, name, "--bench-timeout", "15",
                         SUANLI_FAKE_GPU_SLOW="1", SUANLI_FAKE_GPU_HANG="4", SUANLI_FAKE_GPU_CRASH="6")
        assert "device 4: bench did not finish within 15s" in proc.stderr
        stored = parse_node(record(api_client, name))
        degraded = {d.index: d.health_reason for d in stored.status.devices if d.health == DeviceHealth.DEGRADED}
        assert degraded == {1: "BelowGolden", 4: "BenchTimedOut", 6: "BenchCrashed"}, stored.status.errors
        assert our_labels(core, name)["suanli.io/accelerator.healthy"] == "5"
        [(reason, kind, message)] = events(core, name)
        assert (reason, kind) == ("AcceleratorDegraded", "Warning")
        assert "no longer placed" in message and "5 of 8 cards usable" in message
        bench = next(c for c in stored.status.conditions if c.type == "Benchmarked")
        assert bench.reason == "BenchFailed"

        # --place-degraded: the same cards stay visible as Degraded but count as usable again.
        run_agent(cluster, name, "--bench-timeout", "15", "--place-degraded",
                  SUANLI_FAKE_GPU_SLOW="1", SUANLI_FAKE_GPU_HANG="4", SUANLI_FAKE_GPU_CRASH="6")
        assert our_labels(core, name)["suanli.io/accelerator.healthy"] == "8"
        stored = parse_node(record(api_client, name))
        assert sum(d.health == DeviceHealth.DEGRADED for d in stored.status.devices) == 3
    finally:
        delete_nodes(core, [name])


def test_data_corruption_survives_a_restart_until_an_on_demand_retest_passes(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, crds_applied: list[str]
) -> None:
    name = f"sdc-{uuid.uuid4().hex[:8]}"
    core.create_node(fake_node(name, allocatable={"nvidia.com/gpu": "8"}))  # type: ignore[arg-type]
    custom = client.CustomObjectsApi(api_client)
    try:
        run_agent(cluster, name, SUANLI_FAKE_GPU_CORRUPT="2")
        assert our_labels(core, name)["suanli.io/accelerator.healthy"] == "7"

        # A new agent process (a restart), the card now passing: still out, a clean run proves nothing.
        run_agent(cluster, name)
        stored = parse_node(record(api_client, name))
        assert (stored.status.devices[2].health, stored.status.devices[2].health_reason) == (
            DeviceHealth.UNHEALTHY, "DataCorruption")
        assert our_labels(core, name)["suanli.io/accelerator.healthy"] == "7"

        # The administrator asks for a re-test: it passes, the card is back, the request is answered.
        custom.patch_cluster_custom_object("suanli.io", "v1alpha1", "acceleratornodes", name,
                                           {"metadata": {"annotations": {"suanli.io/bench-request": "r1"}}})
        run_agent(cluster, name)
        assert our_labels(core, name)["suanli.io/accelerator.healthy"] == "8"
        obj = record(api_client, name)
        assert obj["metadata"]["annotations"]["suanli.io/bench-request-done"] == "r1"
        stored = parse_node(obj)
        card = stored.status.devices[2]
        assert card.health == DeviceHealth.HEALTHY and card.health_reason is None
        assert [r for r, _, _ in events(core, name)] == ["AcceleratorDataCorruption", "AcceleratorRecovered"]
    finally:
        delete_nodes(core, [name])
