"""The operator under faults, on the real control plane: what issue 10 requires of the scheduling engine.

Each test provokes one fault an admin of a shared cluster meets — API errors through a fault-injecting proxy
(faultproxy.py), a leader frozen mid-gang, kill -9 of the leader, hostile or impossible input, vanished pods,
a stranger's pods, deletion mid-bind, slow-to-die containers — and asserts on API objects and the API
server's audit log only, never on engine internals, so the tests hold whatever shape the engine takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from .conftest import devcluster, tear_down, wait_for
from .faultproxy import FaultProxy, Faults
from .operator_harness import (
    OperatorProcess,
    create_job,
    get_job,
    job_manifest,
    job_pods,
    lease_holder,
    lease_name,
    make_fleet,
    phase,
    replica,
    wait_schedulable,
)

ROOT = Path(__file__).resolve().parents[2]
PLANNED_NODE = "suanli.io/planned-node"
# Written by an operator replica only while it leads; what else it may write (its Lease, Events) is left out
# of the hand-over check.
NOT_LEADER_WRITES = {"leases", "events"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@pytest.fixture
def fresh_operator(cluster: Any, crds_applied: list[str]) -> Iterator[OperatorProcess]:
    """An operator of the test's own, not the module's shared one: a fault that wedges it must not fail the
    next test."""
    proc = OperatorProcess(cluster.kubeconfig, cluster.dir / f"faults-{uuid.uuid4().hex[:6]}.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def nodes(api_client: client.ApiClient, core: client.CoreV1Api, namespace: str) -> Iterator[list[str]]:
    """Node names a test adds to; teardown deletes the namespace's jobs, waits for their pods, then the nodes."""
    made: list[str] = []
    yield made
    tear_down(api_client, namespace, made)


def _wait(predicate: Callable[[], Any], timeout: float, what: str, proc: OperatorProcess,
          interval: float = 0.2) -> Any:
    """wait_for, with the end of the operator's log in the failure, read when it fails."""
    try:
        return wait_for(predicate, timeout, interval=interval, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- operator log ---\n{proc.tail()}") from None


def _prefix() -> str:
    return f"x{uuid.uuid4().hex[:5]}"


def _status(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_job(api, namespace, name).get("status") or {})


def _texts(status: dict[str, Any]) -> str:
    """Everything a user reads about the job's state: reason, message and every condition's."""
    parts = [str(status.get("reason") or ""), str(status.get("message") or "")]
    for c in status.get("conditions", []):
        parts += [str(c.get("reason") or ""), str(c.get("message") or "")]
    return "\n".join(parts)


def _live(pod: client.V1Pod) -> bool:
    return pod.metadata.deletion_timestamp is None and pod.status.phase not in ("Succeeded", "Failed")


def _gang_whole(api: client.ApiClient, core: client.CoreV1Api, namespace: str, name: str, replicas: int) -> bool:
    """Running, with exactly `replicas` live pods of the current generation, each bound where placement says."""
    status = _status(api, namespace, name)
    if status.get("phase") != "Running":
        return False
    generation = str(status.get("restarts", 0))
    live = [p for p in job_pods(core, namespace, name) if _live(p)]
    where = {p["replica"]: p["node"] for p in status.get("placement", [])}
    return len(live) == replicas and all(
        p.metadata.labels.get("suanli.io/generation") == generation
        and p.spec.node_name
        and where.get(int(p.metadata.labels["suanli.io/replica"])) == p.spec.node_name
        for p in live
    )


def _free_cards(proc: OperatorProcess) -> dict[tuple[str, str], float]:
    """The operator's own count of free cards per (vendor, model), from its metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.labels["vendor"], s.labels["model"]): s.value
        for family in text_string_to_metric_families(proc.scrape())
        for s in family.samples
        if s.name == "suanli_accelerators" and s.labels.get("state") == "free"
    }


def _events(core: client.CoreV1Api, namespace: str, name: str | None = None) -> list[client.CoreV1Event]:
    selector = f"involvedObject.name={name}" if name else None
    return list(core.list_namespaced_event(namespace, field_selector=selector).items)


# ---- API errors --------------------------------------------------------------------------------------


def test_api_errors_are_retried_without_rolling_back_a_gang(
    cluster: Any, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, crds_applied: list[str],
    nodes: list[str],
) -> None:
    # 10 % of the operator's writes fail: shed (429 with Retry-After), fail (500/503), lose the connection
    # before the request reaches the API server or after it took effect; every write is also delayed a little.
    faults = Faults(fraction=0.10, kinds=("429", "500", "503", "reset", "reset-after"), latency=(0.0, 0.05), seed=10)
    with FaultProxy(cluster.server, cluster.dir / "pki" / "ca.crt", faults) as proxy:
        kubeconfig = proxy.write_kubeconfig(cluster.kubeconfig, cluster.dir / f"kubeconfig-{uuid.uuid4().hex[:6]}")
        operator = OperatorProcess(kubeconfig, cluster.dir / f"faults-api-{uuid.uuid4().hex[:6]}.log")
        operator.start()
        try:
            pools = (("nvidia", "H100"), ("huawei", "Ascend910B"))
            before = _free_cards(operator)
            fleet = make_fleet(core, _prefix(), ["nvidia", "huawei"], racks=2, nodes_per_rack=4)
            nodes += fleet
            # A pending reason while the nodes start, or before the operator's view (through the faults) has
            # them, would read as a fault let through below.
            wait_schedulable(core, fleet)
            _wait(lambda: all(_free_cards(operator).get(pool, 0) >= before.get(pool, 0) + 64 for pool in pools),
                  60, "the operator to see the new nodes' 64 cards per vendor free", operator)
            names = [f"g{i}" for i in range(6)]
            for i, name in enumerate(names):  # Huawei gangs also write a rank-table ConfigMap
                vendor = ("nvidia", "huawei")[i % 2]
                create_job(api_client, namespace, job_manifest(name, [vendor], replicas=4, per_replica=4,
                                                               simulate=None))
            _wait(lambda: all(_gang_whole(api_client, core, namespace, n, 4) for n in names), 120,
                  "every gang bound whole through the faults", operator)
            stats = proxy.stats()
        finally:
            operator.stop()
    gang_faults = [r for r in proxy.records() if r.fault and r.resource in ("pods", "pods/binding")]
    # About 7 expected (10 % of some 70 pod creates and binds); none would mean the test proved nothing.
    assert gang_faults, f"no fault hit a pod create or binding: {stats}"
    problems = []
    for name in names:
        status = _status(api_client, namespace, name)
        if status.get("restarts") or status.get("reason") == "BindFailed" or status.get("badNodes"):
            problems.append(f"{name}: restarts {status.get('restarts')}, reason {status.get('reason')}, "
                            f"badNodes {status.get('badNodes')}: {status.get('message')}")
    # Room for every gang at once: any warning (a rollback, a restart, "unschedulable") is a fault let through.
    problems += [f"{e.type} event {e.reason} on {e.involved_object.name}: {e.message}"
                 for e in _events(core, namespace) if e.type == "Warning"]
    # A binding's path names its pod, so the next request to it after a 429 is that request's retry: it must
    # wait the Retry-After the 429 asked for (a little early is clock noise).
    records = proxy.records()
    for i, shed in enumerate(records):
        if shed.fault == "429" and shed.resource == "pods/binding":
            retry = next((r for r in records[i + 1:] if (r.method, r.path) == (shed.method, shed.path)), None)
            if retry is not None and retry.at - shed.at < faults.retry_after - 0.05:
                problems.append(f"{shed.path} retried {retry.at - shed.at:.2f} s after a 429 that said "
                                f"Retry-After: {faults.retry_after}")
    # A rollback or restart deletes the pods it made: no pod may have been deleted at all.
    if "DELETE pods" in stats["forwarded"]:
        problems.append(f"{stats['forwarded']['DELETE pods']} pod deletions (rolled back or restarted)")
    assert not problems, "\n".join([*problems, f"proxy: {stats}"])


# ---- Leader hand-over --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audited_cluster() -> Iterator[devcluster.Cluster]:
    """A control plane of its own with the audit log on (the session's has none), for the hand-over test."""
    directory = ROOT / ".cache" / f"faults-audit-{os.getpid()}"
    cluster = devcluster.up(directory, audit=True, fresh=True)
    try:
        kubectl = [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            subprocess.run([*kubectl, "apply", "--server-side", "-f", str(crd)], check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                        "crd/aitrainingjobs.suanli.io"], check=True, capture_output=True)
        yield cluster
    finally:
        devcluster.down(directory)
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def _agent_is(agent: str, identity: str) -> bool:
    """Whether a User-Agent is the operator replica `identity`'s: `suanli/<identity>`, maybe followed by more."""
    prefix = f"suanli/{identity}"
    return agent == prefix or agent.startswith((prefix + " ", prefix + "("))


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class _BindWatch(threading.Thread):
    """Watches the namespace's pods; the moment `threshold` are bound, freezes `target` (SIGSTOP)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, threshold: int) -> None:
        super().__init__(name="bind-watch", daemon=True)
        self.core, self.namespace, self.threshold = core, namespace, threshold
        self.target: OperatorProcess | None = None
        self.bound: set[str] = set()
        self.frozen_with = -1
        self.frozen_at: datetime | None = None
        self.fired = threading.Event()
        self.watch = watch.Watch()

        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while not self.fired.is_set() and time.monotonic() < deadline:
            try:  # a watch may end or break (410 Gone, a dropped connection): start another
                for event in self.watch.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=60):
                    pod = event["object"]
                    if isinstance(pod, client.V1Pod) and pod.spec.node_name:
                        self.bound.add(pod.metadata.name)
                    if len(self.bound) >= self.threshold and self.target is not None:
                        self.target.pause()
                        self.frozen_at = datetime.now(UTC)
                        self.frozen_with = len(self.bound)
                        self.fired.set()
                        self.watch.stop()
                        return
            except Exception as exc:  # kept for the test's failure message
                self.error = exc
                time.sleep(0.2)


def test_a_frozen_leader_never_writes_after_the_standby_takes_over(audited_cluster: devcluster.Cluster) -> None:
    api = config.new_client_from_config(config_file=str(audited_cluster.kubeconfig))
    core = client.CoreV1Api(api)
    namespace, election, replicas_n = "handover", "faults-handover", 256
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    make_fleet(core, "h", ["nvidia"], racks=4, nodes_per_rack=8)  # 256 cards: one per replica
    # Writes to pods slowed a little, so that a 256-pod gang takes long enough to freeze its binder mid-way.
    slow = Faults(latency=(0.05, 0.15), paths=r"/pods")
    with FaultProxy(audited_cluster.server, audited_cluster.dir / "pki" / "ca.crt", slow) as proxy:
        kubeconfig = proxy.write_kubeconfig(audited_cluster.kubeconfig, audited_cluster.dir / "kubeconfig-handover")
        procs = {
            f"handover-{i}": replica(kubeconfig, audited_cluster.dir / f"handover-{i}.log", f"handover-{i}", election)
            for i in range(2)
        }
        try:
            for proc in procs.values():
                proc.start()
            old_id = wait_for(lambda: lease_holder(api, election), 60, what="a Lease holder")
            assert old_id in procs, f"the Lease is held by {old_id!r}, not one of {sorted(procs)}"
            new_id = next(i for i in procs if i != old_id)
            watcher = _BindWatch(core, namespace, threshold=16)
            watcher.target = procs[old_id]
            watcher.start()
            create_job(api, namespace, job_manifest("wide", ["nvidia"], replicas=replicas_n, per_replica=1,
                                                    simulate=None))
            assert watcher.fired.wait(120), (f"{watcher.threshold} pods not bound within 120 s (watch error: "
                                             f"{watcher.error!r}); {proxy.stats()}\n{procs[old_id].tail()}")
            assert watcher.frozen_with < replicas_n, "the whole gang was bound before the leader could be frozen"
            _wait(lambda: lease_holder(api, election) == new_id, 90,
                  f"{new_id} to take the Lease over from the frozen {old_id}", procs[new_id], interval=0.5)
            procs[old_id].resume()
            _wait(lambda: _gang_whole(api, core, namespace, "wide", replicas_n), 120,
                  "the new leader to finish the gang", procs[new_id], interval=1)
            time.sleep(5)  # the resumed replica's in-flight work gets its chance to do harm
        finally:
            for proc in procs.values():
                proc.resume()
                proc.stop()

    records = [json.loads(line) for line in audited_cluster.audit_log.read_text().splitlines() if line]
    ours = {i: [r for r in records if _agent_is(r.get("userAgent", ""), i)] for i in procs}
    missing = [i for i, rs in ours.items() if not rs]
    assert not missing, (
        f"no audit record has User-Agent suanli/{missing[0]}: every request of an operator process must carry "
        f"`User-Agent: suanli/<POD_NAME>`; agents seen: {sorted({r.get('userAgent', '') for r in records})[:20]}"
    )
    assert watcher.frozen_at is not None
    takeovers = [
        _at(r["stageTimestamp"]) for r in ours[new_id]
        if (r.get("objectRef") or {}).get("resource") == "leases"
        and (r.get("objectRef") or {}).get("name") == lease_name(election)
        and r["verb"] in ("create", "update", "patch")
        and 200 <= (r.get("responseStatus") or {}).get("code", 0) < 300
        and _at(r["requestReceivedTimestamp"]) > watcher.frozen_at
    ]
    assert takeovers, f"no successful Lease write by {new_id} after the freeze in the audit log"
    handed_over = min(takeovers)
    late = [
        f"{r['verb']} {r['objectRef'].get('resource')}/{r['objectRef'].get('subresource', '')} "
        f"{r['objectRef'].get('name', '')} -> {(r.get('responseStatus') or {}).get('code')} "
        f"at {r['requestReceivedTimestamp']}"
        for r in ours[old_id]
        if r["verb"] in WRITE_VERBS
        and (r.get("objectRef") or {}).get("resource") not in NOT_LEADER_WRITES
        and _at(r["requestReceivedTimestamp"]) > handed_over
    ]
    assert not late, f"{old_id} wrote after {new_id} took over at {handed_over.isoformat()}: {late[:20]}"
    status = _status(api, namespace, "wide")
    assert len(status["placement"]) == replicas_n
    where = {p["replica"]: p["node"] for p in status["placement"]}
    pods = [p for p in job_pods(core, namespace, "wide") if _live(p)]
    assert len(pods) == replicas_n
    misplaced = [p.metadata.name for p in pods
                 if where[int(p.metadata.labels["suanli.io/replica"])] != p.spec.node_name]
    assert not misplaced, f"pods not where status.placement says: {misplaced[:20]}"


# ---- Chaos -------------------------------------------------------------------------------------------


def test_chaos_kill_the_leader_while_gangs_schedule_and_restart(
    cluster: Any, api_client: client.ApiClient, namespace: str, crds_applied: list[str]
) -> None:
    """bench/chaos.py, small: 5 kill -9s of the leader among 6 gangs, two of them made to restart."""
    import chaos  # bench/, on sys.path once operator_harness is imported
    # Seed 23 draws one fresh identity (a hand-over once the Lease expires) among the 5 kills, and 4 kills
    # within a second of a submission or injected failure; the run takes about a minute.
    cfg = chaos.ChaosConfig(gangs=6, kills=5, replicas=2, failures=2, max_gap=3.0, fresh_identity=0.3,
                            settle=90.0, max_gang=4, seed=23)
    run = chaos.Chaos(api_client, cluster.kubeconfig, namespace, cluster.dir, cfg)
    try:
        summary = run.run()
    finally:
        run.cleanup()
    assert summary["kills"] == 5 and summary.get("fresh_identities", 0) >= 1, summary
    assert summary["violation_count"] == 0, json.dumps(summary, indent=2)


# ---- Input the engine cannot handle fails alone --------------------------------------------------------


def test_a_job_with_an_impossible_quantity_fails_alone(
    fresh_operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    nodes: list[str],
) -> None:
    nodes += make_fleet(core, _prefix(), ["nvidia"], racks=1, nodes_per_rack=2)
    bad = job_manifest("negative", ["nvidia"], replicas=1, per_replica=8, simulate=None)
    bad["spec"]["template"]["resources"]["requests"]["cpu"] = "-1"
    refused: ApiException | None = None
    try:
        create_job(api_client, namespace, bad)
    except ApiException as exc:  # the API server refusing it up front is the best outcome
        assert exc.status == 422 and "cpu" in str(exc.body), exc.body
        refused = exc
    create_job(api_client, namespace, job_manifest("healthy", ["nvidia"], replicas=2, per_replica=8, simulate=None))
    _wait(lambda: phase(api_client, namespace, "healthy") == "Running", 30,
          "the healthy job to run beside the bad one", fresh_operator)
    if refused is None:
        def explained() -> str | None:
            status = _status(api_client, namespace, "negative")
            text = _texts(status)
            return text if status.get("phase") in ("Failed", "Pending") and "cpu" in text else None

        _wait(explained, 30, "the bad job to fail with a condition that names the cpu request", fresh_operator)
        assert not job_pods(core, namespace, "negative")


# ---- A vanished replica --------------------------------------------------------------------------------


def test_a_deleted_replica_restarts_the_whole_gang(
    fresh_operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    nodes: list[str],
) -> None:
    nodes += make_fleet(core, _prefix(), ["nvidia"], racks=1, nodes_per_rack=4)
    create_job(api_client, namespace, job_manifest("pair", ["nvidia"], replicas=2, per_replica=8, simulate=None))
    wait_for(lambda: _gang_whole(api_client, core, namespace, "pair", 2), 30, what="pair Running")
    victim = next(p.metadata.name for p in job_pods(core, namespace, "pair")
                  if p.metadata.labels["suanli.io/replica"] == "1")
    core.delete_namespaced_pod(victim, namespace)  # as kubectl delete, a drain or an eviction would

    restarted = _wait(lambda: (s := _status(api_client, namespace, "pair")).get("restarts") == 1 and s, 15,
                      f"a gang restart after {victim} vanished", fresh_operator)
    text = _texts(restarted)
    assert victim in text or "replica 1" in text, f"the restart does not name the vanished replica: {text}"
    wait_for(lambda: _gang_whole(api_client, core, namespace, "pair", 2), 30, what="the new gang Running")


# ---- A stranger's pod ----------------------------------------------------------------------------------


def test_a_strangers_pod_that_claims_suanli_holds_no_capacity(
    fresh_operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    nodes: list[str],
) -> None:
    nodes += make_fleet(core, _prefix(), ["nvidia"], racks=1, nodes_per_rack=1)
    node = nodes[0]
    other = f"stranger-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        wait_for(lambda: core.list_namespaced_service_account(other, field_selector="metadata.name=default").items,
                 30, what="the stranger namespace's default ServiceAccount")
        # Everything a Suanli pod carries that a stranger can copy: scheduler, planned node, job labels.
        core.create_namespaced_pod(other, {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "squatter",
                "labels": {"suanli.io/job": "squatter", "suanli.io/replica": "0", "suanli.io/generation": "0"},
                "annotations": {PLANNED_NODE: node},
            },
            "spec": {
                "schedulerName": "suanli",
                "containers": [{"name": "c", "image": "registry.example.com/squat:1",
                                "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
            },
        })
        create_job(api_client, namespace, job_manifest("owner", ["nvidia"], replicas=1, per_replica=8, simulate=None))
        _wait(lambda: _gang_whole(api_client, core, namespace, "owner", 1), 30,
              "the job to get the node the stranger claims", fresh_operator)
        assert not core.read_namespaced_pod("squatter", other).spec.node_name, "Suanli bound a pod it did not make"
        wait_for(lambda: _events(core, other, "squatter"), 30, what="an event on the stranger's pod")
    finally:
        core.delete_namespace(other)


# ---- Names that cannot become a Service or hostname -------------------------------------------------------


@pytest.mark.parametrize("name", ["a.b", "n" + "x" * 61], ids=["dot", "62-chars"])
def test_a_name_that_cannot_be_a_hostname_is_refused_or_fails_once(
    fresh_operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    nodes: list[str], name: str,
) -> None:
    nodes += make_fleet(core, _prefix(), ["nvidia"], racks=1, nodes_per_rack=2)
    try:
        create_job(api_client, namespace, job_manifest(name, ["nvidia"], replicas=2, per_replica=8, simulate=None))
    except ApiException as exc:  # refused at admission (CEL on metadata.name): the best outcome
        assert exc.status == 422 and "name" in str(exc.body), exc.body
        return

    def failed() -> dict[str, Any] | None:
        status = _status(api_client, namespace, name)
        return status if status.get("phase") == "Failed" and "name" in _texts(status) else None

    first = _wait(failed, 30, f"{name!r} to fail with a condition about its name", fresh_operator)
    time.sleep(6)  # three resync periods: a looping engine would retry and rewrite status meanwhile
    assert _status(api_client, namespace, name) == first, "the failed job's status kept changing"
    assert not job_pods(core, namespace, name)
    warnings = [e for e in _events(core, namespace, name) if e.type == "Warning"]
    assert sum(e.count or 1 for e in warnings) <= 2, [(e.reason, e.count, e.message) for e in warnings]
    assert not [e for e in warnings if e.reason == "BindFailed"], "bound, failed and rolled back: it loops"


# ---- Deleted while binding ----------------------------------------------------------------------------------


def test_a_job_deleted_while_its_gang_binds_leaves_nothing_behind(
    fresh_operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    nodes: list[str],
) -> None:
    nodes += make_fleet(core, _prefix(), ["huawei"], racks=2, nodes_per_rack=4)
    create_job(api_client, namespace, job_manifest("doomed", ["huawei"], replicas=64, per_replica=1, simulate=None))
    wait_for(lambda: job_pods(core, namespace, "doomed"), 30, interval=0.02, what="the gang's first pods")
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "suanli.io", "v1alpha1", namespace, "aitrainingjobs", "doomed"
    )

    def leftovers() -> list[str]:
        pods = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
        services = [s.metadata.name for s in core.list_namespaced_service(namespace).items]
        tables = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items
                  if c.metadata.name.startswith("rings-config-")]
        return pods + services + tables

    wait_for(lambda: not leftovers(), 45, what="the deleted job's pods, Service and rank table to go")
    for _ in range(10):  # and stay gone: a binder still working on the deleted job would bring them back
        time.sleep(0.5)
        assert not leftovers(), leftovers()


# ---- Restarts: graceful deletion, and no double-booked cards ----------------------------------------------


class _PodLog(threading.Thread):
    """Every watch event of the job's pods, in order: (type, name, deletionTimestamp set, grace seconds).

    A broken watch is started again (its first events re-list the pods, Terminating ones with their grace
    period, so nothing the test looks for is lost); `stop()` ends it."""

    def __init__(self, core: client.CoreV1Api, namespace: str, job: str) -> None:
        super().__init__(name="pod-log", daemon=True)
        self.core, self.namespace, self.job = core, namespace, job
        self.events: list[tuple[str, str, bool, int | None]] = []
        self.watch = watch.Watch()
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()
        self.watch.stop()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                for event in self.watch.stream(self.core.list_namespaced_pod, self.namespace,
                                               label_selector=f"suanli.io/job={self.job}", timeout_seconds=60):
                    pod = event["object"]
                    if isinstance(pod, client.V1Pod):
                        self.events.append((event["type"], pod.metadata.name,
                                            pod.metadata.deletion_timestamp is not None,
                                            pod.metadata.deletion_grace_period_seconds))
            except Exception:  # a dropped stream: watch again unless stopped
                time.sleep(0.1)


def test_a_restart_deletes_the_old_gang_gracefully_and_waits_for_its_cards(
    fresh_operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    nodes: list[str],
) -> None:
    nodes += make_fleet(core, _prefix(), ["nvidia"], racks=1, nodes_per_rack=3)
    create_job(api_client, namespace, job_manifest("slowstop", ["nvidia"], replicas=2, per_replica=8, simulate=None))
    wait_for(lambda: _gang_whole(api_client, core, namespace, "slowstop", 2), 30, what="Running")
    placed = {p["replica"]: p["node"] for p in _status(api_client, namespace, "slowstop")["placement"]}
    old = {p.metadata.name: p.spec.node_name for p in job_pods(core, namespace, "slowstop")}
    # kwok stops playing these pods' kubelet: once deleted gracefully they stay Terminating, as pods whose
    # containers take their time to exit do, until the test removes them.
    for pod in old:
        core.patch_namespaced_pod(pod, namespace, {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}})
    log = _PodLog(core, namespace, "slowstop")
    log.start()
    try:
        _restart_onto_held_cards(fresh_operator, api_client, core, namespace, log, placed, old)
    finally:
        log.stop()
        for name in old:  # whatever happened, do not leave pods Terminating with no kubelet to end them
            try:
                core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _restart_onto_held_cards(
    operator: OperatorProcess, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
    log: _PodLog, placed: dict[int, str], old: dict[str, str],
) -> None:
    time.sleep(0.5)
    sick = placed[0]
    core.patch_node(sick, {"metadata": {"labels": {"suanli.io/accelerator.healthy": "7"}}})
    _wait(lambda: _status(api_client, namespace, "slowstop").get("restarts") == 1, 30,
          f"a gang restart away from {sick}", operator)
    time.sleep(4)  # time for a careless engine to place the new gang on the cards still held

    problems = []
    for name in old:  # each old pod got a deletion with a grace period, not a force delete
        seen = [e for e in log.events if e[1] == name]
        if not any(e[2] and (e[3] or 0) > 0 for e in seen):
            problems.append(f"{name} was not deleted gracefully (no Terminating state with a grace period): {seen}")
    terminating = {}
    for name, node in old.items():
        try:
            current = core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            assert exc.status == 404
            continue
        if current.metadata.deletion_timestamp is not None:
            terminating[name] = node
    new = [p for p in job_pods(core, namespace, "slowstop") if p.metadata.labels["suanli.io/generation"] == "1"]
    problems += [f"new {p.metadata.name} bound to {p.spec.node_name}, whose cards terminating {terminating} hold"
                 for p in new if p.spec.node_name in terminating.values()]
    assert not problems, problems

    for name in terminating:  # the containers finally exit
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    wait_for(lambda: _gang_whole(api_client, core, namespace, "slowstop", 2), 30,
             what="the new gang Running once the old one is gone")
    nodes_now = {p["node"] for p in _status(api_client, namespace, "slowstop")["placement"]}
    assert sick not in nodes_now
