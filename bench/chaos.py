"""Chaos: kill -9 the leading operator replica at random moments while gangs are scheduled and restarted.

    python bench/chaos.py --gangs 50 --kills 100          # the issue's run (tens of minutes)
    python bench/chaos.py --gangs 8 --kills 10 --json-out chaos.json

1. A private control plane (hack/devcluster.py; `--cluster-dir` reuses a running one) and, per vendor, enough
   kwok nodes for every gang at once with a quarter to spare.
2. `--replicas` operator replicas run for leadership (tests/integration/operator_harness.replica). `--gangs`
   AITrainingJobs of random size and vendor are submitted over the first half of the run.
3. `--kills` times, after a random pause (0 to 1 s after that round's submission or injected failure with
   probability `--soon`, else 0 to `--max-gap` s): the current Lease holder is killed with SIGKILL and started
   again, as its container would be — with its old identity (a container restart) or, with probability
   `--fresh-identity`, a new one (the pod replaced). Between kills `--failures` live pods
   of running gangs are annotated `suanli.io/simulate: fail`, so kwok fails them and their gang restarts.
4. Throughout, a sampler lists all pods and nodes every second; after the last kill, `--settle` seconds for
   every job to be Running with its whole gang.

Violations, each a list in the summary JSON (exit status 1 when any is non-empty):
- duplicates: two live (not terminating, not finished) pods for the same job and replica, at any sample;
- overcommitted: a node whose bound, unfinished pods (terminating ones included: their containers still
  hold the cards) request more of an accelerator than the node has allocatable, at any sample;
- partial: at the end, a job whose current generation is not wholly bound, or which still has live pods of
  an older generation;
- misplaced: at the end, a pod bound elsewhere than the job's status.placement says;
- not_running: at the end, a job not Running (or Succeeded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "bench"), str(ROOT / "tests" / "integration")]

import devcluster  # noqa: E402
from operator_harness import (  # noqa: E402
    OperatorProcess,
    create_job,
    delete_nodes,
    job_manifest,
    lease_holder,
    make_fleet,
    replica,
)

ACCELERATORS = ("nvidia.com/gpu", "huawei.com/Ascend910", "hygon.com/hcu")
VENDORS = ("nvidia", "huawei", "hygon")
CARDS_PER_NODE = 8
NODES_PER_RACK = 8


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos run; the defaults are the issue's (50 gangs, 100 kills)."""

    gangs: int = 50
    kills: int = 100
    replicas: int = 2
    """Operator replicas running for leadership."""
    failures: int = 20
    """Live pods annotated to fail (each restarts its gang), spread over the kills."""
    max_gap: float = 4.0
    """Seconds between a killed replica being healthy again and the next kill: uniform in [0, max_gap]."""
    soon: float = 0.5
    """Probability that a kill instead comes within a second of that round's submission or injected failure,
    while a gang is likely being bound or restarted; a pause alone would mostly kill an idle leader."""
    fresh_identity: float = 0.3
    """Probability that a killed replica comes back as a new pod (new identity) rather than the same one."""
    settle: float = 180.0
    """Seconds after the last kill for every job to be Running with its whole gang."""
    leader_timeout: float = 90.0
    """Seconds to wait for some replica to hold the Lease before a kill (a fresh identity waits for the
    old holder's Lease to expire)."""
    max_gang: int = 6
    """Largest gang (replicas); sizes are uniform in 1..max_gang, cards per replica 1, 2, 4 or 8."""
    vendors: tuple[str, ...] = VENDORS
    seed: int = 1


@dataclass
class Violations:
    duplicates: list[str] = field(default_factory=list)
    overcommitted: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    not_running: list[str] = field(default_factory=list)

    def total(self) -> int:
        return sum(len(v) for v in asdict(self).values())


def plan_jobs(cfg: ChaosConfig, rng: random.Random) -> list[dict[str, Any]]:
    """`cfg.gangs` manifests of random size, vendors in turn; they run until deleted (no simulate)."""
    jobs = []
    for i in range(cfg.gangs):
        vendor = cfg.vendors[i % len(cfg.vendors)]
        manifest = job_manifest(
            f"chaos-{i:03d}",
            [vendor],
            replicas=rng.randint(1, cfg.max_gang),
            per_replica=rng.choice([1, 2, 4, 8]),
            simulate=None,
            failurePolicy={"maxRestarts": min(1000, cfg.failures + 10)},
        )
        jobs.append(manifest)
    return jobs


def racks_needed(jobs: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Racks of NODES_PER_RACK nodes per vendor so every gang fits at once with a quarter to spare; whole
    nodes for the 8-card replicas, the rest packed."""
    nodes: dict[str, float] = defaultdict(float)
    for job in jobs:
        spec = job["spec"]
        vendor = spec["candidates"][0]["vendor"]
        nodes[vendor] += spec["replicas"] * spec["acceleratorsPerReplica"] / CARDS_PER_NODE
    return {v: max(1, math.ceil(n * 1.25 / NODES_PER_RACK)) for v, n in nodes.items()}


def _accelerators(pod: client.V1Pod) -> dict[str, int]:
    out: Counter[str] = Counter()
    for c in pod.spec.containers or []:
        res = c.resources
        asked = {**((res.limits or {}) if res else {}), **((res.requests or {}) if res else {})}
        for name in ACCELERATORS:
            if name in asked:
                out[name] += int(asked[name])
    return dict(out)


def _live(pod: client.V1Pod) -> bool:
    return pod.metadata.deletion_timestamp is None and (pod.status.phase if pod.status else None) not in (
        "Succeeded",
        "Failed",
    )


def check_snapshot(pods: list[client.V1Pod], nodes: list[client.V1Node]) -> Violations:
    """Duplicates and over-committed nodes in one consistent view (one pod list, one node list)."""
    found = Violations()
    replicas: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for pod in pods:
        labels = pod.metadata.labels or {}
        if "suanli.io/job" in labels and _live(pod):
            key = (pod.metadata.namespace, labels["suanli.io/job"], labels.get("suanli.io/replica", "?"))
            replicas[key].append(pod.metadata.name)
    for (ns, job, rep), names in sorted(replicas.items()):
        if len(names) > 1:
            found.duplicates.append(f"{ns}/{job} replica {rep}: {sorted(names)}")
    used: dict[str, Counter[str]] = defaultdict(Counter)
    holders: dict[str, list[str]] = defaultdict(list)
    for pod in pods:
        phase = pod.status.phase if pod.status else None
        if pod.spec.node_name and phase not in ("Succeeded", "Failed"):
            cards = _accelerators(pod)
            used[pod.spec.node_name].update(cards)
            if cards:
                holders[pod.spec.node_name].append(pod.metadata.name)
    for node in nodes:
        allocatable = (node.status.allocatable if node.status else None) or {}
        for name, count in used.get(node.metadata.name, Counter()).items():
            if count > int(allocatable.get(name, 0)):
                found.overcommitted.append(
                    f"{node.metadata.name}: {count} {name} asked, {allocatable.get(name, 0)} allocatable "
                    f"({sorted(holders[node.metadata.name])})"
                )
    return found


def check_jobs(jobs: list[dict[str, Any]], pods: list[client.V1Pod]) -> Violations:
    """At the end: each job Running with its current generation wholly bound where its placement says."""
    found = Violations()
    by_job: dict[tuple[str, str], list[client.V1Pod]] = defaultdict(list)
    for pod in pods:
        labels = pod.metadata.labels or {}
        if "suanli.io/job" in labels:
            by_job[(pod.metadata.namespace, labels["suanli.io/job"])].append(pod)
    for job in jobs:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        status = job.get("status") or {}
        phase = status.get("phase")
        if phase not in ("Running", "Succeeded"):
            found.not_running.append(f"{ns}/{name}: {phase} ({status.get('reason')}: {status.get('message')})")
        if phase == "Succeeded":
            continue
        generation = str(status.get("restarts", 0))
        live = [p for p in by_job[(ns, name)] if _live(p)]
        current = [p for p in live if (p.metadata.labels or {}).get("suanli.io/generation") == generation]
        stale = sorted(p.metadata.name for p in live if p not in current)
        bound = [p for p in current if p.spec.node_name]
        wanted = job["spec"]["replicas"]
        if stale or (bound and len(bound) != wanted) or len(current) != len(bound):
            found.partial.append(
                f"{ns}/{name}: {len(bound)}/{wanted} bound of generation {generation}, "
                f"{len(current) - len(bound)} unbound, older live pods {stale}"
            )
        where = {p["replica"]: p["node"] for p in status.get("placement", [])}
        for pod in bound:
            rep = int((pod.metadata.labels or {}).get("suanli.io/replica", -1))
            if phase == "Running" and where.get(rep) != pod.spec.node_name:
                found.misplaced.append(f"{ns}/{pod.metadata.name} on {pod.spec.node_name}, placement says "
                                       f"{where.get(rep)}")
    return found


class _Sampler(threading.Thread):
    """Lists every pod and node once a second; keeps each distinct violation and when it was first seen."""

    def __init__(self, core: client.CoreV1Api, t0: float) -> None:
        super().__init__(name="chaos-sampler", daemon=True)
        self.core = core
        self.t0 = t0
        self.samples = 0
        self.seen: dict[str, dict[str, float]] = {"duplicates": {}, "overcommitted": {}}
        self.halt = threading.Event()

    def sample(self) -> None:
        pods = self.core.list_pod_for_all_namespaces(_request_timeout=30).items
        nodes = self.core.list_node(_request_timeout=30).items
        found = check_snapshot(pods, nodes)
        self.samples += 1
        for kind in ("duplicates", "overcommitted"):
            for v in getattr(found, kind):
                self.seen[kind].setdefault(v, round(time.monotonic() - self.t0, 1))

    def run(self) -> None:
        while not self.halt.wait(1.0):
            with contextlib.suppress(ApiException, OSError):
                self.sample()


class Chaos:
    """One run against a cluster the caller owns; `run()` returns the summary."""

    def __init__(
        self, api: client.ApiClient, kubeconfig: Path, namespace: str, log_dir: Path, cfg: ChaosConfig
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_dir = log_dir
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        """Draws the run's shape (jobs, pauses, identities): the same for a seed whatever the timing."""
        self.pick = random.Random(cfg.seed + 1)
        """Chooses among what the cluster shows (which pod to fail), which depends on timing."""
        self.tag = uuid.uuid4().hex[:5]
        self.election = f"chaos-{self.tag}"
        self.incarnation: list[int] = [0] * cfg.replicas
        self.procs: list[OperatorProcess] = []
        self.nodes: list[str] = []
        self.events: Counter[str] = Counter()
        self.takeover_s: list[float] = []

    def _identity(self, slot: int) -> str:
        return f"{self.election}-{slot}-{self.incarnation[slot]}"

    def _start(self, slot: int) -> OperatorProcess:
        proc = replica(self.kubeconfig, self.log_dir / f"{self.election}-{slot}.log", self._identity(slot),
                       self.election)
        proc.start()
        return proc

    def _leader(self) -> int | None:
        """The slot holding the Lease, waiting for one (a new identity waits out the old one's Lease)."""
        deadline = time.monotonic() + self.cfg.leader_timeout
        while time.monotonic() < deadline:
            holder = lease_holder(self.api, self.election)
            for slot in range(len(self.procs)):
                if holder == self._identity(slot):
                    return slot
            time.sleep(0.2)
        return None

    def _inject_failure(self) -> bool:
        """Annotate one live, bound pod of a running gang to fail (kwok fails it half a second later)."""
        pods = [
            p for p in self.core.list_namespaced_pod(self.namespace, label_selector="suanli.io/job").items
            if _live(p) and p.spec.node_name and p.status and p.status.phase == "Running"
        ]
        if not pods:
            return False
        pod = self.pick.choice(pods)
        with contextlib.suppress(ApiException):
            self.core.patch_namespaced_pod(pod.metadata.name, self.namespace, {"metadata": {"annotations": {
                "suanli.io/simulate": "fail", "suanli.io/simulate-after": "500ms"}}})
            return True
        return False

    def _jobs(self) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object("suanli.io", "v1alpha1", self.namespace, "aitrainingjobs")
        return list(items["items"])

    def _settled(self) -> bool:
        jobs = self._jobs()
        pods = self.core.list_namespaced_pod(self.namespace).items
        return len(jobs) == self.cfg.gangs and check_jobs(jobs, pods).total() == 0

    def _settle(self, deadline: float) -> float | None:
        """Seconds after the last kill until every gang has run whole for 3 s in a row and every injected
        failure has been answered by a restart; None if that never happened before `deadline`."""
        start = time.monotonic()
        streak = 0
        while time.monotonic() < deadline:
            restarts = sum((j.get("status") or {}).get("restarts", 0) for j in self._jobs())
            streak = streak + 1 if restarts >= self.events["failures_injected"] and self._settled() else 0
            if streak >= 3:
                return round(time.monotonic() - start, 1)
            time.sleep(1)
        return None

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.monotonic()
        manifests = plan_jobs(cfg, self.rng)
        for vendor, racks in racks_needed(manifests).items():
            self.nodes += make_fleet(self.core, f"c{self.tag}{vendor[0]}", [vendor], racks=racks,
                                     nodes_per_rack=NODES_PER_RACK)
        sampler = _Sampler(self.core, t0)
        try:
            self.procs = [self._start(slot) for slot in range(cfg.replicas)]
            sampler.start()
            pending = list(manifests)
            per_kill = math.ceil(len(pending) / max(1, cfg.kills // 2)) if cfg.kills else len(pending)
            failures_left = cfg.failures
            for k in range(cfg.kills):
                for manifest in pending[:per_kill]:
                    create_job(self.api, self.namespace, manifest)
                del pending[:per_kill]
                draw = self.rng.random()  # drawn every time, so the sequence never depends on the cluster
                due = failures_left and draw < failures_left / (cfg.kills - k)
                if due and self._inject_failure():
                    failures_left -= 1
                    self.events["failures_injected"] += 1
                soon = self.rng.random() < cfg.soon
                time.sleep(self.rng.uniform(0, 1.0) if soon else self.rng.uniform(0, cfg.max_gap))
                leader = self._leader()
                if leader is None:
                    self.events["no_leader_within_timeout"] += 1
                    leader = self.pick.randrange(len(self.procs))
                self.procs[leader].kill()
                self.events["kills"] += 1
                if self.rng.random() < cfg.fresh_identity:
                    self.incarnation[leader] += 1
                    self.events["fresh_identities"] += 1
                killed_at = time.monotonic()
                self.procs[leader] = self._start(leader)
                if self._leader() is not None:
                    self.takeover_s.append(time.monotonic() - killed_at)
            for manifest in pending:
                create_job(self.api, self.namespace, manifest)
            settle_s = self._settle(time.monotonic() + cfg.settle)
            sampler.halt.set()
            sampler.join(10)
            sampler.sample()  # one last view, settled or not
            jobs = self._jobs()
            final = check_jobs(jobs, self.core.list_namespaced_pod(self.namespace).items)
            violations = Violations(
                duplicates=sorted(sampler.seen["duplicates"]),
                overcommitted=sorted(sampler.seen["overcommitted"]),
                partial=final.partial,
                misplaced=final.misplaced,
                not_running=final.not_running,
            )
            if len(jobs) != cfg.gangs:
                violations.not_running.append(f"{cfg.gangs - len(jobs)} of {cfg.gangs} jobs missing")
            takeovers = sorted(self.takeover_s)
            return {
                "config": asdict(cfg),
                "seconds": round(time.monotonic() - t0, 1),
                "settled_after_last_kill_s": settle_s,
                "nodes": len(self.nodes),
                "pods_expected": sum(m["spec"]["replicas"] for m in manifests),
                "gang_restarts": sum((j.get("status") or {}).get("restarts", 0) for j in jobs),
                "samples": sampler.samples,
                "leader_back_after_kill_s": {
                    "p50": round(takeovers[len(takeovers) // 2], 1) if takeovers else None,
                    "max": round(takeovers[-1], 1) if takeovers else None,
                },
                **dict(self.events),
                "violations": asdict(violations),
                "violation_count": violations.total(),
                "first_seen_s": sampler.seen,
                "ok": violations.total() == 0,
            }
        finally:
            sampler.halt.set()
            for proc in self.procs:
                proc.stop()

    def cleanup(self) -> None:
        """Delete the run's jobs (their pods go with them) and its nodes; leave the namespace to its owner."""
        with contextlib.suppress(ApiException):
            self.custom.delete_collection_namespaced_custom_object(
                "suanli.io", "v1alpha1", self.namespace, "aitrainingjobs")
        deadline = time.monotonic() + 120
        while self.core.list_namespaced_pod(self.namespace).items and time.monotonic() < deadline:
            time.sleep(0.5)
        delete_nodes(self.core, self.nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/chaos.py", description=__doc__.splitlines()[0])
    defaults = ChaosConfig()
    parser.add_argument("--gangs", type=int, default=defaults.gangs)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--replicas", type=int, default=defaults.replicas, help="operator replicas")
    parser.add_argument("--failures", type=int, default=defaults.failures, help="pods annotated to fail")
    parser.add_argument("--max-gap", type=float, default=defaults.max_gap, help="max seconds between kills")
    parser.add_argument("--soon", type=float, default=defaults.soon,
                        help="probability that a kill comes within 1 s of a submission or injected failure")
    parser.add_argument("--fresh-identity", type=float, default=defaults.fresh_identity,
                        help="probability that a killed replica returns under a new identity")
    parser.add_argument("--settle", type=float, default=defaults.settle, help="seconds to settle at the end")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--cluster-dir", type=Path, default=None,
                        help="reuse the cluster running in this state directory (default: start a fresh one)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    if args.replicas < 1 or args.gangs < 1 or args.kills < 0:
        parser.error("--replicas and --gangs must be at least 1, --kills at least 0")
    cfg = ChaosConfig(gangs=args.gangs, kills=args.kills, replicas=args.replicas, failures=args.failures,
                      max_gap=args.max_gap, soon=args.soon, fresh_identity=args.fresh_identity, settle=args.settle,
                      seed=args.seed)
    own = args.cluster_dir is None
    directory = args.cluster_dir or ROOT / ".cache" / f"chaos-{os.getpid()}"
    cluster = devcluster.up(directory, fresh=own)
    namespace = f"chaos-{uuid.uuid4().hex[:6]}"
    try:
        kubectl = [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(crd)], check=True,
                           capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                        "crd/aitrainingjobs.suanli.io"], check=True, capture_output=True)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        chaos = Chaos(api, cluster.kubeconfig, namespace, cluster.dir, cfg)
        try:
            summary = chaos.run()
        finally:
            if not own:
                chaos.cleanup()
                core.delete_namespace(namespace)
    finally:
        if own:
            devcluster.down(directory)
            shutil.rmtree(directory, ignore_errors=True)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
