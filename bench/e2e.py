"""End-to-end scheduling benchmark: Suanli, kube-scheduler and a trivial binder on the same kwok fleet.

    python bench/e2e.py --nodes 1000 --jobs 200 --replicas 8 --json             # all groups at once
    python bench/e2e.py --nodes 1000 --rate 2,5,10 --duration 60 --json         # open-loop arrivals
    python bench/e2e.py --nodes 1000 --jobs 200 --qps unlimited,50 --json       # both unthrottled, then at 50

1. A private control plane (hack/devcluster.py) with ``--nodes`` kwok nodes from bench/fleet.py (a third each
   Ascend 910B, H100, DCU; 16 nodes a rack), all idle.
2. For each client setting in ``--qps`` and each arrival rate, one phase per scheduler in ``--schedulers``,
   on the same idle fleet (the previous phase's pods deleted first):
   * ``suanli``: the operator as a process; groups are AITrainingJobs of ``--replicas`` x ``--per-replica``.
   * ``kube-scheduler``: built from the same k8s.io/kubernetes module, run from a KubeSchedulerConfiguration
     whose ``clientConnection.qps/burst`` are raised to 5000/10000 (as kube-scheduler's own scheduler_perf
     runs it) unless ``--qps`` sets a limit; groups are ``--replicas`` plain pods with the same requests.
   * ``trivial``: bench/trivial_binder.py binds each pending pod to the next node with room (no scoring),
     with Suanli's client: the ceiling the API server allows on this machine.
   Pods are created with the engine's plain-JSON client from ``--creators`` threads (the fastest path here);
   the trivial binder running faster than kube-scheduler on the same pods shows creation is not the limit.
3. Arrivals: all ``--jobs`` groups at once (throughput), or open-loop at ``--rate`` groups per second for
   ``--duration`` seconds (latency below capacity: each group is created on schedule whatever the
   scheduler does, so the queue sits in the scheduler, never in the client).

Per phase: pods/s (first submission to the last group whole), p50/p99 time from a group's creation to its
last pod bound, groups left partial, pods bound beyond one per replica (gang restarts), CPU seconds of every
process (/proc) and the API server's CPU milliseconds per bound pod; for Suanli also its API requests per
gang, restarts from the jobs' status, its RSS and the p50/p99 of ``suanli_watch_lag_seconds`` when the
operator exports that histogram ("n/a" otherwise). ``--json`` prints one JSON object; the top-level keys
(suanli_pods_per_s, kube_scheduler_pods_per_s, trivial_pods_per_s, ratio, p99_job_bound_s, partial_gangs)
are those of the first setting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "bench"), str(ROOT / "tests" / "integration"), str(ROOT / "operator")]

import devcluster  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402

from fleet import _VENDORS, node_dict  # noqa: E402
from suanli.controller.informer import Informer  # noqa: E402
from suanli.controller.kubeapi import KubeApi  # noqa: E402
from suanli.render.gang import JOB_LABEL  # noqa: E402
from suanli.settings import OperatorSettings  # noqa: E402

NAMESPACE = "bench"
SCHEDULERS = ("suanli", "kube-scheduler", "trivial")
UNTHROTTLED = (5000.0, 10000)
"""kube-scheduler's client limits when none is asked: scheduler_perf's, far above what one API server takes."""
PROFILES = ROOT / ".cache" / "bench-profiles"
GROUP_LABEL = {"suanli": "suanli.io/job", "kube-scheduler": "group", "trivial": "group"}


def make_nodes(kube: KubeApi, count: int, creators: int) -> None:
    def create(i: int) -> None:
        rack = i // 16
        node = node_dict(f"bn-{i:05d}", rack % 3, f"r{rack}", f"z{rack // 8}", f"region-{rack // 32 % 2}")
        node["metadata"]["annotations"] = {"kwok.x-k8s.io/node": "fake"}
        kube.request("POST", "/api/v1/nodes", node)

    with ThreadPoolExecutor(creators) as pool:
        list(pool.map(create, range(count)))


def warm_up(kube: KubeApi, core: client.CoreV1Api, nodes: int, pods: int, creators: int) -> float:
    """Create ``pods`` pods already bound (``spec.nodeName``: no scheduler), let kwok run them, delete them.

    The API server sizes each resource's watch cache, and the buffer of every watcher, from the event rate it
    has seen: a fresh one closes watchers that fall behind the first burst (apiserver_terminated_watchers_total)
    and kwok then re-watches from resourceVersion 0, i.e. receives every pod again. Without this, whichever
    scheduler runs first pays for that (Suanli did, 56 closed pod watchers in its phase against 0-4 in later
    phases). Returns the seconds it took."""
    t0 = time.monotonic()

    def create(i: int) -> None:
        kube.create(NAMESPACE, "pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"warmup-{i:05d}", "labels": {"bench": "warmup"}},
            "spec": {"nodeName": f"bn-{i % nodes:05d}", "restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "bench:1", "resources": {"requests": {"cpu": "10m"}}}]},
        })

    with ThreadPoolExecutor(creators) as pool:
        list(pool.map(create, range(pods)))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        listed = kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=bench%3Dwarmup") or {}
        if sum((p.get("status") or {}).get("phase") == "Running" for p in listed.get("items") or []) >= pods:
            break
        time.sleep(1)
    core.delete_collection_namespaced_pod(NAMESPACE, label_selector="bench=warmup", grace_period_seconds=0)
    while core.list_namespaced_pod(NAMESPACE, label_selector="bench=warmup", limit=1).items:
        if time.monotonic() > deadline:
            raise TimeoutError("warm-up pods still there after 300 s")
        time.sleep(1)
    return time.monotonic() - t0


def wait_nodes_schedulable(core: client.CoreV1Api, count: int, timeout: float = 600) -> None:
    """Until kwok has made every node Ready and the node-lifecycle controller has lifted the not-ready taints:
    a phase that starts earlier measures node start-up (and Suanli writes a pending reason per job meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = core.list_node(label_selector="").items
        ready = [
            n for n in nodes
            if n.metadata.name.startswith("bn-")
            and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            and not any(t.key.startswith("node.kubernetes.io/") for t in n.spec.taints or [])
        ]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ready)} of {count} nodes schedulable after {timeout:.0f} s")
        time.sleep(1)


class Groups:
    """When each group first had all its replicas bound at once, from pod events.

    Counts live bound pods per group (a pod deleted by a gang restart stops counting), so a group is whole
    only when ``replicas`` of its pods are bound together; every distinct pod ever bound is kept too.
    """

    def __init__(self, group_label: str, replicas: int) -> None:
        self.group_label = group_label
        self.replicas = replicas
        self.bound: dict[str, tuple[float, str, str]] = {}  # pod -> (first seen bound, group, node)
        self.live: dict[str, set[str]] = defaultdict(set)  # group -> its pods bound now
        self.whole: dict[str, float] = {}  # group -> when it first was whole
        self.lock = threading.Lock()

    def seen(self, kind: str | None, pod: dict[str, Any], now: float) -> None:
        meta = pod["metadata"]
        name = meta["name"]
        group = (meta.get("labels") or {}).get(self.group_label, "")
        with self.lock:
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                self.live[group].discard(name)
                return
            node = (pod.get("spec") or {}).get("nodeName")
            if not node:
                return
            if name not in self.bound:
                self.bound[name] = (now, group, node)
            self.live[group].add(name)
            if len(self.live[group]) >= self.replicas and group not in self.whole:
                self.whole[group] = now


class BindRecorder:
    """Feeds :class:`Groups` from the operator's own raw list+watch of the benchmark namespace (no typed
    deserialisation, resumes from its resourceVersion), so it does not lag behind the events it times."""

    def __init__(self, api: client.ApiClient, group_label: str, replicas: int) -> None:
        self.groups = Groups(group_label, replicas)
        core = client.CoreV1Api(api)
        self._feed = Informer("bench-pods", lambda **kw: core.list_namespaced_pod(NAMESPACE, **kw),
                              lambda kind, pod: self.groups.seen(kind, pod, time.monotonic()))
        self._feed.start()
        self._feed.synced.wait(60)

    def wait(self, groups: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.groups.whole) >= groups:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._feed.stop()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User+system CPU seconds so far of each named process (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            out[name] = 0.0
    return out


def memory_mib(pid: int) -> dict[str, float]:
    """Resident set now and at its peak (VmRSS, VmHWM), MiB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mib" if key == "VmRSS" else "peak_rss_mib"] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def _labels(line: str) -> dict[str, str]:
    inner = line[line.index("{") + 1:line.index("}")]
    return {k: v.strip('"') for k, v in (part.split("=", 1) for part in inner.split(",") if "=" in part)}


def api_requests(text: str) -> dict[str, float]:
    """The operator's suanli_api_requests_total, summed by `verb resource`."""
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("suanli_api_requests_total{"):
            labels = _labels(line)
            out[f"{labels['verb']} {labels['resource']}"] += float(line.split()[-1])
    return dict(out)


def _buckets(text: str, name: str) -> dict[float, float]:
    out: dict[float, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = _labels(line)["le"]
            out[math.inf if le == "+Inf" else float(le)] += float(line.split()[-1])
    return out


def histogram_quantiles(text: str, name: str, since: str = "",
                        quantiles: tuple[float, ...] = (0.5, 0.99)) -> dict[str, Any]:
    """Upper bucket bounds holding each quantile of histogram ``name`` (all label sets summed; only what was
    observed after the scrape ``since`` when given), and its count; {} when the operator does not export it."""
    buckets = _buckets(text, name)
    earlier = _buckets(since, name)
    buckets = {le: n - earlier.get(le, 0.0) for le, n in buckets.items()}
    if not buckets.get(math.inf):
        return {}
    total = buckets[math.inf]
    out: dict[str, Any] = {"count": int(total)}
    for q in quantiles:
        bound = next(le for le in sorted(buckets) if buckets[le] >= q * total)
        out[f"p{round(q * 100)}_s"] = "inf" if bound == math.inf else bound
    return out


APISERVER_COUNTERS = {
    "apiserver_request_total": ("verb", "resource", "subresource"),
    "apiserver_watch_events_total": ("resource",),
    "apiserver_watch_events_sizes_sum": ("resource",),
    "apiserver_terminated_watchers_total": ("resource",),
}
"""The API server's own counters the bench reads per phase: requests by verb and resource (every client:
the scheduler, the bench, kwok, the controller manager), watch events and their bytes sent, and watchers it
closed for falling behind, by resource."""


def _get_raw(api: client.ApiClient, path: str, timeout: float | None = None) -> bytes:
    """GET a non-JSON endpoint of the API server (/metrics, /debug/pprof) with the client's credentials."""
    cfg = api.configuration
    headers = {str(a["key"]): str(a["value"]) for a in cfg.auth_settings().values()
               if a.get("in") == "header" and a.get("value")}
    return bytes(api.rest_client.pool_manager.request("GET", f"{str(cfg.host).rstrip('/')}{path}", headers=headers,
                                                      timeout=timeout).data)


def apiserver_counters(api: client.ApiClient) -> dict[str, dict[str, float]]:
    """A scrape of the API server's /metrics reduced to :data:`APISERVER_COUNTERS`, label values joined."""
    out: dict[str, dict[str, float]] = {name: defaultdict(float) for name in APISERVER_COUNTERS}
    for line in _get_raw(api, "/metrics").decode().splitlines():
        name = line.split("{", 1)[0]
        if name in APISERVER_COUNTERS and "{" in line:
            labels = _labels(line)
            key = " ".join(labels.get(k, "") for k in APISERVER_COUNTERS[name]).strip()
            out[name][key] += float(line.split()[-1])
    return out


def capture_cpu_profile(api: client.ApiClient, seconds: float, path: Path) -> threading.Thread:
    """The API server's Go CPU profile (/debug/pprof/profile) for ``seconds`` from now, written to ``path`` by a
    thread; read it with `go tool pprof -top <path>`."""
    def fetch() -> None:
        profile = _get_raw(api, f"/debug/pprof/profile?seconds={max(1, round(seconds))}", timeout=seconds + 30)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(profile)

    thread = threading.Thread(target=fetch, name="pprof", daemon=True)
    thread.start()
    return thread


def apiserver_profile(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                      groups: int) -> dict[str, dict[str, float]]:
    """What the API server did per group during a phase: requests by verb and resource, watch events and
    watch KiB sent by resource (only what at least 0.05 per group), and how many watchers the API server closed
    for falling behind (each one re-lists or re-watches: kwok from resourceVersion 0, all its pods again)."""
    def per_group(name: str, scale: float = 1.0) -> dict[str, float]:
        delta = {k: (v - before[name].get(k, 0.0)) * scale / groups for k, v in after[name].items()}
        return {k: round(v, 2) for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v >= 0.05}
    return {"requests": per_group("apiserver_request_total"),
            "watch_events": per_group("apiserver_watch_events_total"),
            "watch_kib": per_group("apiserver_watch_events_sizes_sum", 1 / 1024),
            "watchers_closed_unresponsive": {k: round(v - before["apiserver_terminated_watchers_total"].get(k, 0.0))
                                             for k, v in after["apiserver_terminated_watchers_total"].items()
                                             if v - before["apiserver_terminated_watchers_total"].get(k, 0.0) > 0}}


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(created: dict[str, float], seen: Groups, groups: int, t0: float) -> dict[str, Any]:
    replicas = seen.replicas
    with seen.lock:
        whole = dict(seen.whole)
        live = {g: len(pods) for g, pods in seen.live.items() if g}
        bound = len(seen.bound)
        nodes_of: dict[str, set[str]] = defaultdict(set)
        for _, group, node in seen.bound.values():
            nodes_of[group].add(node)
    pods_of: dict[str, int] = defaultdict(int)
    for _, group, _ in seen.bound.values():
        pods_of[group] += 1
    latencies = sorted(whole[g] - created[g] for g in whole if g in created)
    last = max(whole.values(), default=t0)
    return {
        "groups_whole": len(whole),
        "pods_bound": bound,
        "extra_pods_bound": max(0, bound - groups * replicas),
        "pods_per_s": round(len(whole) * replicas / max(last - t0, 1e-9), 1),
        "p50_job_bound_s": round(statistics.median(latencies), 3) if latencies else None,
        "p99_job_bound_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_job_bound_s": round(latencies[-1], 3) if latencies else None,
        "partial_gangs": sum(1 for g, n in live.items() if 0 < n < replicas),
        "gangs_on_one_node": sum(1 for g in whole if len(nodes_of[g]) == 1),
        "groups_with_extra_pods": {g: n for g, n in sorted(pods_of.items()) if n > replicas},
    }


Submit = Callable[[int], None]


def measure(api: client.ApiClient, scheduler: str, pids: dict[str, int], start: Callable[[], int], submit: Submit,
            args: argparse.Namespace, rate: float | None, tag: str = "") -> dict[str, Any]:
    """One phase: ``start()`` the scheduler (returns its pid) and submit the groups — all at once from
    ``--creators`` threads, one every 1/rate seconds, or (``--backlog``) all before the scheduler starts —
    wait until every group is whole, and summarise binds and the CPU each process used meanwhile."""
    groups = args.jobs if rate is None else max(1, round(rate * args.duration))
    pids = {**pids, "bench": os.getpid()}  # this process: the creating client and the bind recorder
    recorder = BindRecorder(api, GROUP_LABEL[scheduler], args.replicas)
    counters0 = apiserver_counters(api)
    created: dict[str, float] = {}
    submitted: list[float] = []
    late: list[float] = []

    def run(i: int, due: float | None) -> None:
        begun = time.monotonic()
        if due is not None:
            late.append(begun - due)
        created[f"job-{i:04d}"] = begun
        submit(i)
        submitted.append(time.monotonic())

    def submit_all() -> float:
        t0 = time.monotonic()
        with ThreadPoolExecutor(args.creators) as pool:
            if rate is None:
                list(pool.map(lambda i: run(i, None), range(groups)))
            else:
                futures = []
                for i in range(groups):
                    due = t0 + i / rate
                    time.sleep(max(0.0, due - time.monotonic()))
                    futures.append(pool.submit(run, i, due))
                for future in futures:
                    future.result()
        return t0

    profile_path = PROFILES / f"apiserver-{tag or scheduler}.pprof"
    profiling: threading.Thread | None = None
    if args.backlog:
        t_submit = submit_all()
        cpu0 = cpu_seconds(pids)
        pid = start()
        pids = {**pids, scheduler: pid}
        cpu0.update(cpu_seconds({scheduler: pid}))  # from ready on, as for the others
        if args.pprof:
            profiling = capture_cpu_profile(api, args.pprof, profile_path)
    else:
        pid = start()
        pids = {**pids, scheduler: pid}
        cpu0 = cpu_seconds(pids)
        if args.pprof:
            profiling = capture_cpu_profile(api, args.pprof, profile_path)
        t_submit = submit_all()
    submit_s = max(submitted, default=t_submit) - t_submit
    done = recorder.wait(groups, args.timeout)
    recorder.stop()
    cpu1 = cpu_seconds(pids)
    counters1 = apiserver_counters(api)
    if profiling is not None:
        profiling.join()
    # With a backlog the clock starts at the first bind: creation and the scheduler's start are not its work.
    t0 = min((t for t, _, _ in recorder.groups.bound.values()), default=t_submit) if args.backlog else t_submit
    result = summarize({} if args.backlog else created, recorder.groups, groups, t0)
    cpu = {name: round(cpu1[name] - cpu0.get(name, 0.0), 1) for name in pids}
    pods = max(result["pods_bound"], 1)
    result.update(
        groups=groups, completed=done, wall_s=round(time.monotonic() - t0, 1),
        created_pods_per_s=round(groups * args.replicas / max(submit_s, 1e-9), 1) if scheduler != "suanli" else None,
        cpu_s=cpu, total_cpu_s=round(sum(cpu.values()), 1),
        apiserver_cpu_ms_per_pod=round(cpu.get("kube-apiserver", 0.0) * 1000 / pods, 2),
        scheduler_cpu_ms_per_pod=round(cpu.get(scheduler, 0.0) * 1000 / pods, 2),
        apiserver=apiserver_profile(counters0, counters1, groups),
    )
    if late:
        result["max_submit_late_s"] = round(max(late), 3)  # how far the client fell behind the schedule
    return result


def job_body(i: int, replicas: int, per_replica: int) -> dict[str, Any]:
    vendor = ("huawei", "nvidia", "hygon")[i % 3]
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": f"job-{i:04d}"},
        "spec": {
            "replicas": replicas,
            "acceleratorsPerReplica": per_replica,
            "candidates": [{"vendor": vendor, "image": f"bench/{vendor}:1"}],
            "template": {"resources": {"requests": {"cpu": "1", "memory": "4Gi"}}},
            "topology": {"required": "zone"},
        },
    }


def plain_pod(i: int, r: int, per_replica: int, scheduler_name: str) -> dict[str, Any]:
    resource = _VENDORS[i % 3]["resource"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"job-{i:04d}-{r}", "labels": {"group": f"job-{i:04d}"}},
        "spec": {
            "schedulerName": scheduler_name,
            "containers": [{"name": "trainer", "image": "bench:1", "resources": {
                "requests": {"cpu": "1", "memory": "4Gi", resource: str(per_replica)},
                "limits": {resource: str(per_replica)}}}],
            "restartPolicy": "Never",
        },
    }


def scheduler_config(path: Path, kubeconfig: Path, qps: float | None) -> Path:
    """A KubeSchedulerConfiguration: client limits as asked (scheduler_perf's 5000/10000 when none)."""
    rate, burst = UNTHROTTLED if qps is None else (qps, max(1, int(qps * 2)))
    path.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        f"clientConnection:\n  kubeconfig: {json.dumps(str(kubeconfig))}\n  qps: {rate:g}\n  burst: {burst}\n"
        "leaderElection:\n  leaderElect: false\n"
    )
    return path


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited {proc.returncode}: {log.read_text()[-2000:]}")
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{log.name}: no {text!r} after {timeout:.0f} s")


def wait_ready(port: int, log: Path, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Until kube-scheduler's /readyz (served to anyone; it includes its informers' sync) answers ok."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate; loopback only
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", timeout=2, context=insecure) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{log.name}: /readyz not ok after {timeout:.0f} s")


def clean(core: client.CoreV1Api, custom: client.CustomObjectsApi, timeout: float = 900) -> None:
    """Remove every job and pod of the previous phase and wait until the namespace has no pods, and no
    Service or rank table left for the garbage collector.

    Deleting 8,000 pods in one call outlasts the API server's 60 s request timeout (504: it stops part-way),
    so the deletes are repeated until nothing is left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            custom.delete_collection_namespaced_custom_object("suanli.io", "v1alpha1", NAMESPACE, "aitrainingjobs")
            core.delete_collection_namespaced_pod(NAMESPACE, grace_period_seconds=0)
        except client.ApiException as exc:
            if exc.status not in (429, 500, 503, 504) or time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        # The jobs' Services and rank tables go by garbage collection: wait for them too, so that this phase's
        # clean-up is not done by the API server during the next phase (it was: 40 of 200 Services).
        if not (core.list_namespaced_pod(NAMESPACE, limit=1).items
                or core.list_namespaced_service(NAMESPACE, limit=1).items
                or core.list_namespaced_config_map(NAMESPACE, label_selector=JOB_LABEL, limit=1).items):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"pods of the previous phase still there after {timeout:.0f} s")
        time.sleep(1)


def suanli_supports_qps() -> bool:
    """Whether this operator reads a client QPS limit (SUANLI_API_QPS); if not, it always runs unthrottled."""
    return hasattr(OperatorSettings, "api_qps")


def run_phase(scheduler: str, cluster: Any, bin_dir: Path, api: client.ApiClient, kube: KubeApi,
              args: argparse.Namespace, qps: float | None, rate: float | None, tag: str,
              make_pod: Callable[[int, int, int, str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """One phase of `scheduler`; kube-scheduler's and the trivial binder's groups are `make_pod`'s pods
    (default: plain_pod; bench/pod_shape.py passes others)."""
    make_pod = make_pod or plain_pod
    if scheduler == "suanli":
        return suanli_phase(cluster, api, kube, args, qps, rate, tag)
    log_path = cluster.dir / f"{scheduler}-{tag}.log"
    port = devcluster._free_port()
    if scheduler == "kube-scheduler":
        cfg = scheduler_config(cluster.dir / f"kube-scheduler-{tag}.yaml", cluster.kubeconfig, qps)
        argv = [str(bin_dir / "kube-scheduler"), f"--config={cfg}", "--bind-address=127.0.0.1",
                f"--secure-port={port}"]
        scheduler_name = "default-scheduler"
    else:
        argv = [sys.executable, str(ROOT / "bench" / "trivial_binder.py"), "--kubeconfig", str(cluster.kubeconfig),
                "--namespace", NAMESPACE, "--scheduler-name", "trivial", "--workers", str(args.binder_workers)]
        if qps is not None:
            argv += ["--qps", f"{qps:g}", "--burst", str(int(qps * 2))]
        scheduler_name = "trivial"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> int:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**cluster.env(), "PYTHONPATH": str(ROOT / "operator")})
        procs.append(proc)
        if scheduler == "kube-scheduler":
            wait_ready(port, log_path, proc)
        else:
            wait_for_line(log_path, "synced:", proc)
        return proc.pid

    def submit_group(i: int) -> None:
        for r in range(args.replicas):
            kube.create(NAMESPACE, "pods", make_pod(i, r, args.per_replica, scheduler_name))

    try:
        result = measure(api, scheduler, dict(cluster.pids), start, submit_group, args, rate, tag)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    result["client_qps"] = "unlimited" if qps is None else f"{qps:g}"
    if scheduler == "kube-scheduler":
        result["client_limits"] = f"qps {UNTHROTTLED[0]:g} burst {UNTHROTTLED[1]}" if qps is None else \
            f"qps {qps:g} burst {int(qps * 2)}"
    return result


def suanli_phase(cluster: Any, api: client.ApiClient, kube: KubeApi, args: argparse.Namespace, qps: float | None,
                 rate: float | None, tag: str) -> dict[str, Any]:
    # As deployed: the settings' defaults, not the tests' 2 s resync that OperatorProcess sets.
    env = {"SUANLI_RESYNC_SECONDS": f"{OperatorSettings.resync_seconds:g}"}
    if qps is not None:
        env.update(SUANLI_API_QPS=f"{qps:g}", SUANLI_API_BURST=str(int(qps * 2)))
    if qps is not None and not suanli_supports_qps():  # hold its client from outside (bench/throttle)
        env.update(BENCH_THROTTLE_QPS=f"{qps:g}", BENCH_THROTTLE_BURST=str(int(qps * 2)),
                   PYTHONPATH=os.pathsep.join([str(ROOT / "bench" / "throttle"), str(ROOT / "operator")]))
    operator = OperatorProcess(cluster.kubeconfig, cluster.dir / f"operator-{tag}.log", env=env)
    before: dict[str, float] = {}
    scraped: list[str] = []

    def start() -> int:
        operator.start()
        assert operator.proc is not None
        scraped.append(operator.scrape())
        before.update(api_requests(scraped[0]))
        return int(operator.proc.pid)

    def submit_job(i: int) -> None:
        kube.request("POST", f"/apis/suanli.io/v1alpha1/namespaces/{NAMESPACE}/aitrainingjobs",
                     job_body(i, args.replicas, args.per_replica))

    try:
        result = measure(api, "suanli", dict(cluster.pids), start, submit_job, args, rate, tag)
        assert operator.proc is not None
        result.update(memory_mib(operator.proc.pid))
        text = operator.scrape()
    finally:
        operator.stop()
    after = api_requests(text)
    result["api_requests_per_gang"] = {k: round((v - before.get(k, 0.0)) / result["groups"], 2)
                                       for k, v in sorted(after.items())}
    lag = histogram_quantiles(text, "suanli_watch_lag_seconds", since=scraped[0] if scraped else "")
    if lag:
        lag["events_per_s"] = round(lag["count"] / max(result["wall_s"], 1e-9), 1)
    result["watch_lag"] = lag or "n/a"  # the phase's watch events only, not the operator's start-up list
    log_text = operator.log.read_text(errors="replace") if operator.log.exists() else ""
    result["client_qps"] = "unlimited" if qps is None else f"{qps:g}" if suanli_supports_qps() else (
        f"{qps:g} (bench/throttle on KubeApi.request; watches not held)" if "bench throttle: KubeApi" in log_text
        else "unlimited (the operator has no client limit and bench/throttle did not apply)")
    listed = kube.request("GET", f"/apis/suanli.io/v1alpha1/namespaces/{NAMESPACE}/aitrainingjobs") or {}
    restarted = {j["metadata"]["name"]: (j.get("status") or {}).get("restarts", 0) for j in listed.get("items") or []
                 if (j.get("status") or {}).get("restarts")}
    result["restarts"] = sum(restarted.values())
    result["jobs_restarted"] = dict(sorted(restarted.items())[:20])
    result["extra_pods_explained"] = explain_extra(result["groups_with_extra_pods"], listed.get("items") or [],
                                                   operator.log)
    result["unexplained_extra_groups"] = sorted(g for g, why in result["extra_pods_explained"].items()
                                                if not why["explained"])
    return result


_RESTART_WORDS = re.compile(r"restart|roll(ed|ing)? ?back|recreat|replac|delet|evict|preempt", re.IGNORECASE)


def explain_extra(extra: dict[str, int], jobs: list[dict[str, Any]], log: Path) -> dict[str, dict[str, Any]]:
    """For each job that had more pods bound than replicas: what its status and the operator's log say.

    A job counts as explained when its status records a restart or a log line naming it speaks of a
    restart, rollback, deletion or preemption; the bench exits 1 when any is not (issue 12: 4,006 pods bound
    for 4,000 replicas with nothing in the log saying why)."""
    if not extra:
        return {}
    by_name = {j["metadata"]["name"]: j.get("status") or {} for j in jobs}
    lines: dict[str, list[str]] = defaultdict(list)
    if log.exists():
        with log.open(errors="replace") as text:
            for line in text:
                for group in extra:
                    if group in line and len(lines[group]) < 5:
                        lines[group].append(line.strip()[:300])
    out: dict[str, dict[str, Any]] = {}
    for group, pods in extra.items():
        status = by_name.get(group, {})
        said = [line for line in lines[group] if _RESTART_WORDS.search(line)]
        out[group] = {
            "pods_bound": pods,
            "restarts": status.get("restarts", 0),
            "reason": status.get("reason"),
            "message": (status.get("message") or "")[:300],
            "conditions": [f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip()
                           for c in status.get("conditions") or []],
            "log": said[:3] or lines[group][:2],
            "explained": bool(status.get("restarts")) or bool(said),
        }
    return out


def parse_list(text: str, allow_unlimited: bool) -> list[float | None]:
    out: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        if allow_unlimited and part in ("unlimited", "none", "0"):
            out.append(None)
            continue
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: expected a number" +
                                             (" or 'unlimited'" if allow_unlimited else "")) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{part!r}: must be above 0")
        out.append(value)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    bin_dir = devcluster.build_tools("kube-scheduler") if "kube-scheduler" in args.schedulers else Path()
    cluster = devcluster.up(ROOT / ".cache" / "bench-cluster", fresh=True)
    settings: list[dict[str, Any]] = []
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = args.creators + 8
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        kube = KubeApi(api, timeout=60)
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            subprocess.run([str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "apply",
                            "--server-side", "-f", str(crd)], check=True, capture_output=True)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        t_nodes = time.monotonic()
        make_nodes(kube, args.nodes, args.creators)
        wait_nodes_schedulable(core, args.nodes, timeout=max(600.0, args.nodes * 0.25))
        node_setup_s = time.monotonic() - t_nodes
        warmup_s = warm_up(kube, core, args.nodes, args.warmup, args.creators) if args.warmup else 0.0
        for qps in args.qps:
            for rate in args.rate:
                entry: dict[str, Any] = {"qps": "unlimited" if qps is None else qps, "rate": rate}
                for scheduler in args.schedulers:
                    tag = f"{scheduler}-q{qps or 0:g}-r{rate or 0:g}"
                    entry[scheduler.replace("-", "_")] = run_phase(
                        scheduler, cluster, bin_dir, api, kube, args, qps, rate, tag)
                    # Each phase as it ends, on stderr: a long run that fails later keeps what it measured.
                    print(json.dumps({"phase": tag, **entry[scheduler.replace("-", "_")]}), file=sys.stderr,
                          flush=True)
                    clean(core, custom)
                settings.append(entry)
    finally:
        devcluster.down(cluster.dir)
    first = settings[0]
    out: dict[str, Any] = {
        "nodes": args.nodes, "replicas": args.replicas, "per_replica": args.per_replica,
        "jobs": args.jobs if args.rate == [None] else None,
        "mode": "backlog" if args.backlog else "all at once" if args.rate == [None] else
        f"open loop for {args.duration:g} s",
        "node_setup_s": round(node_setup_s, 1), "warmup_pods": args.warmup, "warmup_s": round(warmup_s, 1),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    for scheduler in args.schedulers:
        key = scheduler.replace("-", "_")
        out[f"{key}_pods_per_s"] = first[key]["pods_per_s"]
    if "suanli" in args.schedulers and "kube-scheduler" in args.schedulers:
        out["ratio"] = round(first["suanli"]["pods_per_s"] / max(first["kube_scheduler"]["pods_per_s"], 1e-9), 2)
    if "suanli" in args.schedulers:
        out.update(p50_job_bound_s=first["suanli"]["p50_job_bound_s"],
                   p99_job_bound_s=first["suanli"]["p99_job_bound_s"],
                   partial_gangs=sum(s["suanli"]["partial_gangs"] for s in settings))
    out["settings"] = settings
    return out


def table(result: dict[str, Any]) -> str:
    """The settings side by side, one row per (client limit, rate, scheduler)."""
    rows = ["| client QPS | arrivals (groups/s) | scheduler | pods/s | p50 / p99 group bound s | partial | extra pods "
            "| API-server CPU ms/pod | scheduler CPU s | all CPU s |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in result["settings"]:
        for key, r in entry.items():
            if not isinstance(r, dict):
                continue
            rows.append(f"| {entry['qps']} | {entry['rate'] or result['mode']} | {key} | {r['pods_per_s']} "
                        f"| {r['p50_job_bound_s']} / {r['p99_job_bound_s']} | {r['partial_gangs']} "
                        f"| {r['extra_pods_bound']} | {r['apiserver_cpu_ms_per_pod']} "
                        f"| {r['cpu_s'].get(key.replace('_', '-'), 0)} | {r['total_cpu_s']} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="See docs/benchmarks.md for the measured runs and their commands.")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=200, help="groups when all arrive at once")
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--per-replica", type=int, default=1, help="accelerators per replica (default 1)")
    parser.add_argument("--schedulers", default=",".join(SCHEDULERS),
                        help=f"comma list of {', '.join(SCHEDULERS)} (default all, in that order)")
    parser.add_argument("--qps", default="unlimited",
                        help="comma list of client limits, each run for every scheduler: 'unlimited' "
                             "(kube-scheduler at 5000/10000) or a QPS (burst twice it); default unlimited")
    parser.add_argument("--rate", default=None,
                        help="comma list of open-loop arrival rates in groups/s (e.g. 2,5,10); default: all "
                             "--jobs groups at once")
    parser.add_argument("--backlog", action="store_true",
                        help="create every group before the scheduler starts: throughput with a full queue, the "
                             "clock running from the first bind (no latency figures)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of open-loop arrivals (default 60)")
    parser.add_argument("--creators", type=int, default=32, help="client threads creating pods and jobs")
    parser.add_argument("--binder-workers", type=int, default=64,
                        help="the trivial binder's parallel binds (default 64, Suanli's bind_workers)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for every group whole")
    parser.add_argument("--warmup", type=int, default=None, metavar="PODS",
                        help="pods created bound and deleted before the first phase, so the API server's watch "
                             "cache is sized as in a running cluster for every phase alike (default: the pods of "
                             "one phase, at most 2,000; 0 skips it)")
    parser.add_argument("--pprof", type=float, default=0, metavar="SECONDS",
                        help="capture the API server's CPU profile for the first SECONDS of each phase into "
                             ".cache/bench-profiles/apiserver-<phase>.pprof (go tool pprof -top FILE)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    try:
        args.schedulers = [s.strip() for s in args.schedulers.split(",") if s.strip()]
        unknown = [s for s in args.schedulers if s not in SCHEDULERS]
        if unknown or not args.schedulers:
            raise argparse.ArgumentTypeError(f"--schedulers {','.join(unknown)}: choose from {', '.join(SCHEDULERS)}")
        args.qps = parse_list(args.qps, allow_unlimited=True)
        args.rate = [None] if args.rate is None else parse_list(args.rate, allow_unlimited=False)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.warmup is None:
        per_phase = args.jobs if args.rate == [None] else max(args.rate) * args.duration
        args.warmup = int(min(2000, per_phase * args.replicas))
    if args.backlog and args.rate != [None]:
        parser.error("--backlog creates every group up front: it cannot be combined with --rate")
    if args.warmup < 0 or args.pprof < 0:
        parser.error("--warmup and --pprof must be 0 (off) or above")
    if args.nodes < 1 or args.jobs < 1 or args.replicas < 1 or args.duration <= 0 or args.creators < 1:
        parser.error("--nodes, --jobs, --replicas, --creators and --duration must be above 0")
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(table(result))
        print(json.dumps({k: v for k, v in result.items() if k != "settings"}))
    ok = all(s["suanli"]["completed"] and s["suanli"]["partial_gangs"] == 0 and not s["suanli"][
        "unexplained_extra_groups"] for s in result["settings"] if "suanli" in s)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
