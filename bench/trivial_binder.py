"""A scheduler that only binds: the most pods per second the API server allows on this machine.

    python bench/trivial_binder.py --kubeconfig KUBECONFIG --namespace bench --scheduler-name trivial

Each pending pod of ``--scheduler-name`` in ``--namespace`` goes to the next node (first fit from where the last
search stopped) with room for its requests: no filters beyond room, no scoring, no gangs. It talks to the API
server the way Suanli does (the engine's plain-JSON client ``KubeApi`` over the official client's connection
pool, the raw list+watch ``Informer``, 64 bind workers), so bench/e2e.py can set Suanli and kube-scheduler
against what a scheduler with free decisions reaches. ``--qps``/``--burst`` put a token bucket in front of
its calls, as kube-scheduler's clientConnection limits do. Prints ``synced`` once its pod feed has listed.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from suanli.controller.informer import Informer
from suanli.controller.kubeapi import KubeApi


class TokenBucket:
    """``rate`` calls a second on average, ``burst`` at once; rate 0 means no limit."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


def requests_of(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What the pod asks of a node: summed container requests, plus one of the node's pod slots."""
    total: dict[str, Decimal] = {"pods": Decimal(1)}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(value)
    return total


class Binder:
    def __init__(self, kube: KubeApi, nodes: list[dict[str, Any]], bucket: TokenBucket, scheduler: str) -> None:
        self.kube = kube
        self.bucket = bucket
        self.scheduler = scheduler
        self.names = [n["metadata"]["name"] for n in nodes]
        self.free = {n["metadata"]["name"]: {k: parse_quantity(v) for k, v in
                                             ((n.get("status") or {}).get("allocatable") or {}).items()}
                     for n in nodes}
        self.cursor = 0
        self.lock = threading.Lock()
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: set[str] = set()
        self.placed: dict[str, tuple[str, dict[str, Decimal]]] = {}  # pod -> (node, what it took)

    def on_pod(self, kind: str | None, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        name = str(meta.get("name"))
        if kind == "DELETED":
            self.release(name)
            self.seen.discard(name)
            return
        spec = pod.get("spec") or {}
        if (spec.get("schedulerName") != self.scheduler or spec.get("nodeName") or meta.get("deletionTimestamp")
                or name in self.seen):
            return
        self.seen.add(name)
        self.queue.put(pod)

    def reserve(self, want: dict[str, Decimal]) -> str | None:
        """The next node (first fit from the cursor) with room for ``want``, its room taken; None if none."""
        with self.lock:
            for step in range(len(self.names)):
                i = (self.cursor + step) % len(self.names)
                free = self.free[self.names[i]]
                if all(free.get(k, Decimal(0)) >= v for k, v in want.items()):
                    for k, v in want.items():
                        free[k] -= v
                    self.cursor = i
                    return self.names[i]
        return None

    def release(self, name: str) -> None:
        with self.lock:
            placed = self.placed.pop(name, None)
            if placed is not None:
                node, took = placed
                for k, v in took.items():
                    self.free[node][k] += v

    def work(self) -> None:
        while True:
            pod = self.queue.get()
            meta = pod["metadata"]
            want = requests_of(pod)
            node = self.reserve(want)
            if node is None:
                print(f"no node has room for {meta['name']}", flush=True)
                continue
            with self.lock:
                self.placed[meta["name"]] = (node, want)
            self.bucket.take()
            try:
                self.kube.bind(meta["namespace"], meta["name"], node)
            except ApiException as exc:
                self.release(meta["name"])
                if exc.status != 404:  # a pod deleted before its bind is simply gone
                    print(f"bind {meta['name']} -> {node}: {exc.status} {exc.reason}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--scheduler-name", default="trivial")
    parser.add_argument("--workers", type=int, default=64, help="parallel binds (Suanli's bind_workers)")
    parser.add_argument("--qps", type=float, default=0, help="client calls per second, 0 = no limit")
    parser.add_argument("--burst", type=int, default=0)
    args = parser.parse_args()
    api = config.new_client_from_config(config_file=args.kubeconfig)
    api.configuration.connection_pool_maxsize = args.workers + 4
    core = client.CoreV1Api(api)
    kube = KubeApi(api, timeout=30)
    nodes = (kube.request("GET", "/api/v1/nodes") or {}).get("items") or []
    if not nodes:
        print("no nodes to bind to", file=sys.stderr)
        return 2
    bucket = TokenBucket(args.qps, args.burst or int(args.qps * 2))
    binder = Binder(kube, nodes, bucket, args.scheduler_name)
    for _ in range(args.workers):
        threading.Thread(target=binder.work, daemon=True).start()
    feed = Informer("trivial-pods", lambda **kw: core.list_namespaced_pod(args.namespace, **kw), binder.on_pod)
    feed.start()
    if not feed.synced.wait(60):
        print("pod feed did not sync in 60 s", file=sys.stderr)
        return 1
    print(f"synced: {len(nodes)} nodes", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
