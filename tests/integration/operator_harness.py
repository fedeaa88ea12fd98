"""Helpers for end-to-end tests: run the operator as a real process, make kwok fleets, write jobs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from fleet import node_dict  # noqa: E402

VENDOR_INDEX = {"huawei": 0, "nvidia": 1, "hygon": 2}
IMAGES = {
    "huawei": "registry.example.com/train/demo:ascend",
    "nvidia": "registry.example.com/train/demo:cuda",
    "hygon": "registry.example.com/train/demo:dtk",
}
MODELS = {"huawei": "Ascend910B", "nvidia": "H100", "hygon": "DCU-K100-AI"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """`suanli run` as a child process against the test cluster; start, kill -9, restart."""

    def __init__(
        self, kubeconfig: Path, log: Path, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0

    def start(self) -> None:
        self.port, self.metrics_port = _free_port(), _free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": str(ROOT / "operator"),
            "SUANLI_RESYNC_SECONDS": "2",
            "SUANLI_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "suanli",
                "run",
                "--liveness",
                f"http://127.0.0.1:{self.port}/healthz",
                *self.extra_args,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy after 60s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers run, as when a node dies under the operator."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def make_fleet(
    core: client.CoreV1Api,
    prefix: str,
    vendors: Iterable[str],
    racks: int = 2,
    nodes_per_rack: int = 4,
    zone: str = "z0",
    region: str = "region-a",
) -> list[str]:
    """kwok nodes labelled like real ones of each vendor, `racks` racks of `nodes_per_rack` per vendor."""
    names = []
    for vendor in vendors:
        for r in range(racks):
            for n in range(nodes_per_rack):
                name = f"{prefix}-{vendor}-r{r}-n{n}"
                node = node_dict(name, VENDOR_INDEX[vendor], f"{prefix}-{vendor}-r{r}", zone, region)
                node["metadata"]["annotations"] = {"kwok.x-k8s.io/node": "fake"}
                core.create_node(node)
                names.append(name)
    return names


def delete_nodes(core: client.CoreV1Api, names: Iterable[str]) -> None:
    for name in names:
        try:
            core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def job_manifest(
    name: str,
    vendors: Iterable[str],
    *,
    replicas: int = 2,
    per_replica: int = 8,
    simulate: str | None = "succeed",
    after: str = "2s",
    **spec: Any,
) -> dict[str, Any]:
    annotations = {"suanli.io/simulate": simulate, "suanli.io/simulate-after": after} if simulate else {}
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "acceleratorsPerReplica": per_replica,
            "candidates": [{"vendor": v, "model": MODELS[v], "image": IMAGES[v]} for v in vendors],
            "template": {
                "command": ["torchrun", "train.py"],
                "annotations": annotations,
                "resources": {"requests": {"cpu": "4", "memory": "16Gi"}},
            },
            **spec,
        },
    }


def create_job(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "suanli.io", "v1alpha1", namespace, "aitrainingjobs", manifest
        )
    )


def get_job(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "suanli.io", "v1alpha1", namespace, "aitrainingjobs", name
        )
    )


def phase(api: client.ApiClient, namespace: str, name: str) -> str | None:
    return (get_job(api, namespace, name).get("status") or {}).get("phase")


def job_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"suanli.io/job={name}").items)
