"""The reconciler and gang scheduler: one thread that owns every write Suanli makes for its jobs.

kopf's watch handlers only feed this object (nodes and pods into the inventory, jobs into a cache) and wake
it. A single engine thread then (1) advances placed jobs through the phase machine and (2) plans pending
gangs in priority order and binds them. One writer means no two gangs are ever planned against the same
free cards, so competing gangs cannot deadlock on partial allocations; all state it needs to resume lives
in the API server (the plan in the job's status, the planned node on each pod), so a killed operator
restarts without duplicating or losing anything.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..api import Vendor
from ..api.aitrainingjob import PLURAL, PRIORITY_MIN, AITrainingJob, AITrainingJobStatus, JobConditionType, JobPhase
from ..api.aitrainingjob import ReplicaPlacement as StatusReplica
from ..api.aitrainingjob import Span as StatusSpan
from ..api.base import GROUP, VERSION
from ..api.base import now as api_now
from ..inventory import Inventory, format_link_domains
from ..inventory.models import VENDOR_BY_NAME
from ..lifecycle import Decision, NodeVerdict, advance, preempt, transition
from ..metrics import Metrics, StateCollector
from ..placement import GangRequest, Placement, RunningGang, Unplaceable, choose_victims, plan
from ..render import GangSlot, build_pod, build_rank_table_config_map, build_service, pod_name, spec_hash
from ..render.gang import JOB_LABEL, PLANNED_NODE_ANNOTATION, rank_table_name
from ..settings import OperatorSettings
from ..topology import Level
from .informer import Informer
from .kubeapi import KubeApi
from .leader import LeaseElector
from .requests import gang_request

log = logging.getLogger("suanli.engine")
T = TypeVar("T")
JobKey = tuple[str, str]
UNFINISHED = (None, JobPhase.PENDING, JobPhase.SCHEDULING, JobPhase.RUNNING, JobPhase.RESTARTING)
WAITING = (None, JobPhase.PENDING, JobPhase.RESTARTING)
PREEMPTION_GRACE_S = 60.0
"""How long a preempting gang waits for its victims' pods to go before it may choose victims again."""


def _key(obj: Mapping[str, Any]) -> JobKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta["name"]))


def _ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class Controller:
    """In-memory view of the cluster plus the engine thread that acts on it."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: OperatorSettings | None = None,
        clock: Callable[[], datetime] = api_now,
        metrics: Metrics | None = None,
        elector: LeaseElector | None = None,
    ) -> None:
        self.settings = settings or OperatorSettings()
        self.metrics = metrics or Metrics()
        self.elector = elector
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.kube = KubeApi(api, self.settings.request_timeout_seconds, self.metrics.api_request)
        """Every write (and the odd read) the engine makes; the typed clients above only list and watch."""
        self.clock = clock
        self.inventory = Inventory(self.settings.inventory)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feeds: list[Informer] = []
        self._pool = ThreadPoolExecutor(self.settings.bind_workers, thread_name_prefix="suanli-api")
        self._gangs = ThreadPoolExecutor(self.settings.gang_workers, thread_name_prefix="suanli-gang")
        self._reconcilers = ThreadPoolExecutor(self.settings.gang_workers, thread_name_prefix="suanli-job")
        self._gang_futures: set[Future[None]] = set()
        self._rank_tables: dict[tuple[str, str], dict[str, str]] = {}
        """Rank-table data last written per ConfigMap, so an unchanged table costs no API call."""
        self._failures: dict[JobKey, int] = {}
        self._retry_at: dict[JobKey, float] = {}
        """Back-off of jobs whose gang failed to bind (monotonic time before which they are not retried)."""
        self._preempting: dict[JobKey, Preempting] = {}
        """Jobs waiting for the gangs they preempted to go; their victims' nodes are held for them."""
        self._inflight: set[JobKey] = set()
        """Jobs whose gang a worker is persisting and binding right now."""
        self._jobs: dict[JobKey, dict[str, Any]] = {}
        self._pods: dict[JobKey, dict[str, dict[str, Any]]] = {}
        self._node_ready: dict[str, bool] = {}
        self._dirty: set[JobKey] = set()
        self._tried: dict[JobKey, int] = {}
        """Inventory generation at a job's last failed plan: nothing changed since, so don't re-plan."""
        self._last_full = 0.0
        self._metered: dict[JobKey, float] = {}
        """Monotonic time up to which each running job's accelerator-seconds have been counted."""
        self.cycles = 0
        self.metrics.registry.register(StateCollector(self, lambda: self._lock))

    # -- feeds (called from kopf's watch handlers, any thread) ---------------------------------------

    def on_node(self, event: str | None, node: Mapping[str, Any]) -> None:
        name = str(node["metadata"]["name"])
        with self._lock:
            before = (self._node_ready.get(name), self._usable(name))
            if event == "DELETED":
                self.inventory.remove_node(name)
                self._node_ready.pop(name, None)
            else:
                self.inventory.upsert_node(node)
                self._node_ready[name] = _ready(node)
            if before != (self._node_ready.get(name), self._usable(name)):
                self._dirty.update(self._jobs_on(name))
        self._wake.set()

    def on_pod(self, event: str | None, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta["name"])
        job = (meta.get("labels") or {}).get(JOB_LABEL)
        with self._lock:
            if event == "DELETED":
                self.inventory.remove_pod(ns, name)
            else:
                self.inventory.upsert_pod(self._as_reserved(pod))
            if job:
                key = (ns, str(job))
                pods = self._pods.setdefault(key, {})
                if event == "DELETED":
                    pods.pop(name, None)
                else:
                    pods[name] = dict(pod)
                self._dirty.add(key)
        self._wake.set()

    def on_job(self, event: str | None, job: Mapping[str, Any]) -> None:
        key = _key(job)
        with self._lock:
            if event == "DELETED":
                self._jobs.pop(key, None)
                self._tried.pop(key, None)
                self._rank_tables.pop((key[0], rank_table_name(key[1])), None)
                self._preempting.pop(key, None)
            else:
                self._jobs[key] = dict(job)  # the feed's freshly decoded object: ours to keep
                self._dirty.add(key)
        self._wake.set()

    def _as_reserved(self, pod: Mapping[str, Any]) -> Mapping[str, Any]:
        """Our unbound pod holds its planned node's cards: a plan survives until the bind lands."""
        spec = pod.get("spec") or {}
        planned = ((pod.get("metadata") or {}).get("annotations") or {}).get(PLANNED_NODE_ANNOTATION)
        if spec.get("nodeName") or not planned or spec.get("schedulerName") != self.settings.scheduler_name:
            return pod
        return {**pod, "spec": {**spec, "nodeName": planned}}

    def _usable(self, node: str) -> int | None:
        found = self.inventory.get(node)
        return found.usable_cards if found else None

    def _jobs_on(self, node: str) -> set[JobKey]:
        return {
            k
            for k, pods in self._pods.items()
            if any((p.get("spec") or {}).get("nodeName") == node for p in pods.values())
        }

    def job_phases(self) -> list[str]:
        """Current phase of every known job (for the state gauges; caller holds the lock)."""
        return [str((j.get("status") or {}).get("phase") or "Pending") for j in self._jobs.values()]

    # -- lifecycle -----------------------------------------------------------------------------------

    def start_feeds(self, timeout: float = 120) -> None:
        """List and watch nodes, pods (any scheduler's) and jobs; return once all three are listed.

        Jobs too, not through kopf: kopf peering pauses a standby's watches, and a standby that later takes
        the engine Lease must already know every job — two leadership signals that could disagree would
        leave nobody scheduling.
        """
        self._feeds = [
            Informer("nodes", self.core.list_node, self.on_node),
            Informer("pods", self.core.list_pod_for_all_namespaces, self.on_pod),
            Informer(
                "aitrainingjobs",
                lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw),
                self.on_job,
            ),
        ]
        for feed in self._feeds:
            feed.start()
        for feed in self._feeds:
            if not feed.synced.wait(timeout):
                raise RuntimeError(f"could not list {feed.kind} within {timeout:.0f} s; see the log")

    def check_api(self) -> None:
        """Fail early, with the fix, when the CRD is missing (the feeds would only retry and log)."""
        try:
            self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1, _request_timeout=60)
        except ApiException as exc:
            if exc.status == 404:
                raise RuntimeError(
                    f"the {PLURAL}.{GROUP} CRD is not installed: "
                    "run `kubectl apply --server-side -f crds/` (or install the Helm chart)"
                ) from exc
            raise

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="suanli-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        for feed in self._feeds:
            feed.stop()
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
        self._gangs.shutdown(wait=False, cancel_futures=True)
        self._reconcilers.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.settings.resync_seconds)
            self._wake.clear()
            try:
                if self.elector is not None:
                    was = self.elector.leading
                    if not self.elector.leads():
                        continue  # a standby keeps its view current but never writes
                    if not was:
                        self._last_full = 0.0  # a new leader looks at every job once
                self.step()
            except Exception:  # the engine must outlive any one bad object or API hiccup
                log.exception("engine pass failed; retrying")
                time.sleep(1)

    def step(self) -> None:
        """One pass: advance placed jobs that saw events, then schedule waiting gangs."""
        self.cycles += 1
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            if time.monotonic() - self._last_full >= self.settings.resync_seconds:
                self._last_full = time.monotonic()
                dirty |= set(self._jobs)
        # Reconcile in parallel, but finish before planning: a job that just turned Restarting must be
        # seen as waiting by this pass's scheduler, not skipped as in flight.
        futures = [f for key in sorted(dirty) if (f := self._dispatch_reconcile(key)) is not None]
        wait(futures, timeout=2 * self.settings.request_timeout_seconds)
        self.schedule()
        self._meter()

    def _meter(self) -> None:
        """Accrue accelerator-seconds of running gangs since the last pass."""
        now = time.monotonic()
        with self._lock:
            running = {k: j for k, j in self._jobs.items() if (j.get("status") or {}).get("phase") == "Running"}
            for key in list(self._metered):
                if key not in running:
                    del self._metered[key]
        for key, job in running.items():
            since = self._metered.get(key, now)
            self._metered[key] = now
            status, spec = job.get("status") or {}, job.get("spec") or {}
            cards = len(status.get("placement") or []) * int(spec.get("acceleratorsPerReplica", 0))
            vendor = str(status.get("vendor") or "mixed")
            self.metrics.meter(key[0], vendor, str(status.get("model")), cards * (now - since))

    # -- placed and finished jobs ------------------------------------------------------------------

    def _parse(self, key: JobKey) -> AITrainingJob | None:
        with self._lock:
            raw = self._jobs.get(key)
            if raw is None:
                return None
            raw = dict(raw)  # writers replace `status`, never mutate it in place
        try:
            return AITrainingJob.model_validate(raw)
        except ValidationError as exc:
            # The CRD's schema should have refused this; say what is wrong once and leave it Pending.
            status = raw.get("status") or {}
            if status.get("reason") != "InvalidSpec":
                self._patch_status(key, {"phase": "Pending", "reason": "InvalidSpec", "message": str(exc)[:4000]})
            return None

    def _dispatch_reconcile(self, key: JobKey) -> Future[None] | None:
        """Advance one job on a worker: jobs are independent, and each writes to the API server."""
        with self._lock:
            if key in self._inflight:
                self._dirty.add(key)  # a worker owns it now; look again on the next pass
                return None
            self._inflight.add(key)

        def work() -> None:
            try:
                self.reconcile(key)
            except Exception:
                log.exception("job %s/%s: reconcile failed; retrying on the next pass", *key)
                with self._lock:
                    self._dirty.add(key)
            finally:
                with self._lock:
                    self._inflight.discard(key)

        return self._reconcilers.submit(work)

    def _submit(self, work: Callable[[], None]) -> None:
        future = self._gangs.submit(work)
        with self._lock:
            self._gang_futures.add(future)
        future.add_done_callback(lambda f: self._gang_futures.discard(f))

    def reconcile(self, key: JobKey) -> None:
        job = self._parse(key)
        if job is None or job.status.phase in (None, JobPhase.SCHEDULING):
            return  # new jobs are the scheduler's; Scheduling is resumed by schedule()
        with self._lock:
            pods = list(self._pods.get(key, {}).values())
            verdicts = {n: self._verdict(n) for p in pods if (n := (p.get("spec") or {}).get("nodeName"))}
        decision = advance(job, pods, verdicts, self.clock())
        self._apply(job, decision)
        # Only Ascend gangs (status.vendor huawei) or mixed ones (None) can have a table: skip the rest cheaply.
        if decision.phase == JobPhase.RUNNING and job.status.placement and job.status.vendor in (None, Vendor.HUAWEI):
            slots = self._slots(job)
            if _has_rank_table(slots):
                self._refresh_rank_table(job, slots, pods)

    def _verdict(self, node: str) -> NodeVerdict:
        if not self._node_ready.get(node, False):
            return NodeVerdict.LOST
        found = self.inventory.get(node)
        if found is not None and self.inventory.allocated_cards(node) > found.usable_cards:
            return NodeVerdict.UNHEALTHY
        return NodeVerdict.OK

    def _apply(self, job: AITrainingJob, decision: Decision) -> None:
        ns = str(job.metadata["namespace"])
        if decision.phase == JobPhase.RESTARTING and job.status.phase != JobPhase.RESTARTING:
            self.metrics.gang_restarted(ns, decision.status.reason or "Unknown")
        if decision.delete_pods:
            self._parallel(lambda name: self._delete_pod(ns, name), decision.delete_pods)
        if decision.status != job.status:
            self._write(job, decision.status, *decision.events)
        else:
            for event in decision.events:
                self._event(job, *event)
        if decision.delete_job:
            _ignore(404, lambda: self.kube.delete_job(ns, str(job.metadata["name"])))

    def _refresh_rank_table(self, job: AITrainingJob, slots: list[GangSlot], pods: list[dict[str, Any]]) -> None:
        """Complete the Ascend rank table once pods have IPs (HCCL launchers wait for "completed")."""
        by_replica = {
            int((p["metadata"].get("labels") or {}).get("suanli.io/replica", -1)): p
            for p in pods
            if (p["metadata"].get("labels") or {}).get("suanli.io/generation") == str(job.status.restarts)
        }
        cm = build_rank_table_config_map(job, slots, by_replica)
        name, ns = rank_table_name(str(job.metadata["name"])), str(job.metadata["namespace"])
        with self._lock:
            written = self._rank_tables.get((ns, name))
        if written == cm["data"]:
            return  # unchanged since we last wrote it: no call on every pod event
        if written is None:  # not written by this process (a restart): look before writing
            try:
                current = self.kube.read(ns, "configmaps", name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                _ignore(409, lambda: self.kube.create(ns, "configmaps", cm))
                return
            written = current.get("data") or {}
        if written != cm["data"]:
            self.kube.merge_patch(ns, "configmaps", name, {"data": cm["data"]})
        with self._lock:
            self._rank_tables[(ns, name)] = cm["data"]

    # -- scheduling --------------------------------------------------------------------------------

    def schedule(self) -> None:
        """Resume interrupted binds, then plan waiting gangs by priority, then age.

        Planning is serial (one writer of the inventory, so two gangs never get the same cards); binding a
        planned gang is handed to a gang worker, so the next plan need not wait for the API server.
        """
        with self._lock:
            jobs = [(k, j) for k, j in self._jobs.items() if k not in self._inflight]
        for key, raw in jobs:
            if (raw.get("status") or {}).get("phase") == JobPhase.SCHEDULING and not self._held(key):
                job = self._parse(key)
                if job is not None and job.status.phase == JobPhase.SCHEDULING:
                    self._dispatch(key, job, self._slots(job), None)
        waiting = [(k, j) for k, j in jobs if (j.get("status") or {}).get("phase") in WAITING]
        waiting.sort(
            key=lambda kj: (
                -int((kj[1].get("spec") or {}).get("priority", 0)),
                str(kj[1]["metadata"].get("creationTimestamp", "")),
                kj[0],
            )
        )
        for key, _ in waiting:
            with self._lock:
                if self._tried.get(key) == self.inventory.generation or key in self._inflight or self._held(key):
                    continue
            job = self._parse(key)
            if job is not None and job.status.phase in WAITING:
                self._schedule_one(key, job, self._held_for_others(key, job.spec.priority))

    def _held_for_others(self, key: JobKey, priority: int) -> frozenset[str]:
        """Nodes freed by preemption for a job of higher priority than `priority`: a lower-priority job (a
        victim above all, steered back by its previous nodes) must not take them before it lands."""
        now = time.monotonic()
        with self._lock:
            for other in [k for k, p in self._preempting.items() if p.until <= now]:
                del self._preempting[other]
            return frozenset(
                node for k, p in self._preempting.items() if k != key and p.priority > priority for node in p.nodes
            )

    def _dispatch(
        self, key: JobKey, job: AITrainingJob, slots: list[GangSlot], plan_status: AITrainingJobStatus | None
    ) -> None:
        """Bind `job`'s gang on a gang worker; `plan_status` (when given) is persisted first."""
        with self._lock:
            self._inflight.add(key)

        def work() -> None:
            t_start = time.monotonic()
            try:
                current = job
                if plan_status is not None:
                    # Persist the plan before acting on it: a restarted operator finishes it, not re-plans.
                    if not self._write(job, plan_status, ("Normal", "Placed", plan_status.message or "")):
                        self._unreserve(job, slots)
                        return
                    current = job.model_copy(update={"status": plan_status})
                t_plan = time.monotonic()
                self._realize(current, slots)
                log.debug("gang %s/%s: plan persisted in %.3fs, bound in %.3fs", *key, t_plan - t_start,
                          time.monotonic() - t_plan)
            except Exception:
                log.exception("gang %s/%s: binding crashed; the next pass resumes it", *key)
                self._back_off(key)
            finally:
                with self._lock:
                    self._inflight.discard(key)
                self._wake.set()

        self._submit(work)

    def _back_off(self, key: JobKey) -> None:
        """Hold a job whose gang failed to bind out of planning for 1, 2, 4 ... 60 s."""
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self._retry_at[key] = time.monotonic() + min(60.0, 2.0 ** (failures - 1))

    def _held(self, key: JobKey) -> bool:
        return self._retry_at.get(key, 0.0) > time.monotonic()

    def drain(self, timeout: float | None = None) -> None:
        """Wait for every gang being bound (tests, and a clean shutdown)."""
        with self._lock:
            pending = list(self._gang_futures)
        wait(pending, timeout=timeout)

    def _schedule_one(self, key: JobKey, job: AITrainingJob, held: frozenset[str] = frozenset()) -> None:
        t0 = time.monotonic()
        request = gang_request(job)
        if held:
            request = replace(request, avoid_nodes=request.avoid_nodes | held)
        with self._lock:
            generation = self.inventory.generation
            outcome = plan(self.inventory, request)
            if isinstance(outcome, Placement):
                slots = self._slots_from(job, outcome)
                self._reserve(job, slots)
        now = self.clock()
        if isinstance(outcome, Unplaceable):
            self._tried[key] = generation
            if self.settings.preemption and job.spec.priority > PRIORITY_MIN and self._preempt(key, job, request):
                return
            message = outcome.summary + "".join(
                f"\n- {c.describe()}: {'; '.join(r)}" for c, r in zip(request.candidates, outcome.reasons, strict=False)
            )
            if job.status.message != message:
                status = transition(
                    job, job.status, JobPhase.PENDING, "Unschedulable", message, now, [(JobConditionType.PLACED, False)]
                )
                self._write(job, status, ("Warning", "Unschedulable", outcome.summary))
            return
        with self._lock:
            self._preempting.pop(key, None)
        mixed = outcome.vendor == "mixed"
        status = transition(
            job,
            job.status,
            JobPhase.SCHEDULING,
            "Placed",
            f"placed {len(outcome.replicas)} replicas on {_what(outcome)} across "
            f"{outcome.span.get(Level.RACK, 0)} rack(s), {outcome.span.get(Level.ZONE, 0)} zone(s) "
            f"in {1000 * (time.monotonic() - t0):.1f} ms",
            now,
            [(JobConditionType.PLACED, True)],
        ).model_copy(
            update={
                # A mixed gang has no one vendor: status.model says "mixed", each replica its candidate.
                "vendor": None if mixed else Vendor(outcome.vendor),
                "model": outcome.model,
                "candidate_index": outcome.candidate_index,
                "placement": [
                    StatusReplica(
                        replica=r.index,
                        node=r.node,
                        candidate_index=r.candidate_index,
                        link_domain=format_link_domains(r.link_domains) or None,
                        rack=r.domains.get(Level.RACK) or None,
                        zone=r.domains.get(Level.ZONE) or None,
                        region=r.domains.get(Level.REGION) or None,
                    )
                    for r in outcome.replicas
                ],
                "span": StatusSpan(
                    nodes=outcome.span.get(Level.NODE, 0),
                    racks=outcome.span.get(Level.RACK, 0),
                    zones=outcome.span.get(Level.ZONE, 0),
                    regions=outcome.span.get(Level.REGION, 0),
                ),
            }
        )
        self._dispatch(key, job, slots, status)

    def _preempt(self, key: JobKey, job: AITrainingJob, request: GangRequest) -> bool:
        """Restart lower-priority running gangs so this one fits; True while it waits on such victims."""
        now = time.monotonic()
        with self._lock:
            waiting = self._preempting.get(key)
            if waiting is not None and now < waiting.until and any(self.inventory.holds(p) for p in waiting.pods):
                return True  # the victims' pods are still going: do not pick more
            victims = choose_victims(self.inventory, request, job.spec.priority, self._running_gangs(key))
            if victims is None:
                self._preempting.pop(key, None)
                return False
            keys = [_split(v.key) for v in victims]
            self._preempting[key] = Preempting(
                until=now + PREEMPTION_GRACE_S,
                priority=job.spec.priority,
                pods=frozenset(p for v in victims for p in v.pods),
                nodes=frozenset(n for v in victims for n in v.nodes),
            )
            self._inflight.update(keys)
            self._tried.pop(key, None)  # re-plan as soon as the victims' pods are gone
        by = f"{job.namespace}/{job.name} (priority {job.spec.priority})"
        try:
            for victim_key in keys:
                victim = self._parse(victim_key)
                if victim is None or victim.status.phase != JobPhase.RUNNING:
                    continue  # finished or restarted since it was chosen: nothing to take
                with self._lock:
                    victim_pods = list(self._pods.get(victim_key, {}).values())
                log.info("preempting %s/%s for %s", *victim_key, by)
                self._apply(victim, preempt(victim, victim_pods, by, self.clock()))
        finally:
            with self._lock:
                self._inflight.difference_update(keys)
        names = ", ".join(v.key for v in victims)
        message = f"preempting {len(victims)} lower-priority gang(s) to make room: {names}"
        status = transition(job, job.status, JobPhase.PENDING, "Preempting", message, self.clock(),
                            [(JobConditionType.PLACED, False)])
        self._write(job, status, ("Normal", "Preempting", message))
        return True

    def _running_gangs(self, exclude: JobKey) -> list[RunningGang]:
        """Running gangs that preemption may restart (caller holds the lock)."""
        out = []
        for key, raw in self._jobs.items():
            status, spec = raw.get("status") or {}, raw.get("spec") or {}
            if key == exclude or key in self._inflight or status.get("phase") != JobPhase.RUNNING:
                continue
            placed: dict[str, Any] = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Placed"), {}
            )
            out.append(RunningGang(
                key=f"{key[0]}/{key[1]}",
                priority=int(spec.get("priority", 0)),
                # When this gang (generation) was placed: startTime is the job's first start only.
                started=str(placed.get("lastTransitionTime") or status.get("startTime") or ""),
                pods=tuple((key[0], name) for name in self._pods.get(key, {})),
                cards=len(status.get("placement") or []) * int(spec.get("acceleratorsPerReplica", 0)),
                nodes=tuple(sorted({str(r["node"]) for r in status.get("placement") or [] if r.get("node")})),
            ))
        return out

    def _slots(self, job: AITrainingJob) -> list[GangSlot]:
        """The gang's slots from the plan recorded in its status (used when resuming)."""
        out = []
        last = len(job.spec.candidates) - 1
        for r in job.status.placement:
            index = r.candidate_index if r.candidate_index is not None else job.status.candidate_index or 0
            candidate = job.spec.candidates[min(index, last)]
            node = self.inventory.get(r.node)
            resource = node.resource if node else VENDOR_BY_NAME[candidate.vendor].resources[0]
            out.append(
                GangSlot(
                    r.replica,
                    r.node,
                    resource,
                    candidate.vendor,
                    candidate.image,
                    r.link_domain,
                    first_device=_first_device(node.link_domains if node else (), r.link_domain),
                )
            )
        return out

    def _slots_from(self, job: AITrainingJob, placement: Placement) -> list[GangSlot]:
        slots = []
        for r in placement.replicas:
            candidate = job.spec.candidates[r.candidate_index]
            node = self.inventory.get(r.node)
            domains = format_link_domains(r.link_domains) or None
            slots.append(
                GangSlot(
                    r.index,
                    r.node,
                    r.resource,
                    r.vendor,
                    candidate.image,
                    domains,
                    first_device=_first_device(node.link_domains if node else (), domains),
                )
            )
        return slots

    def _pods_for(self, job: AITrainingJob, slots: list[GangSlot]) -> list[dict[str, Any]]:
        digest = spec_hash(job)
        rank_table = _has_rank_table(slots)
        return [
            build_pod(
                job,
                s,
                world=len(slots),
                generation=job.status.restarts,
                scheduler_name=self.settings.scheduler_name,
                tolerate=self.settings.inventory.tolerated_taints,
                digest=digest,
                rank_table=rank_table,
            )
            for s in slots
        ]

    def _reserve(self, job: AITrainingJob, slots: list[GangSlot]) -> None:
        for pod in self._pods_for(job, slots):
            pod["spec"]["nodeName"] = pod["metadata"]["annotations"][PLANNED_NODE_ANNOTATION]
            self.inventory.upsert_pod(pod)

    def _unreserve(self, job: AITrainingJob, slots: list[GangSlot]) -> None:
        ns, name = str(job.metadata["namespace"]), str(job.metadata["name"])
        with self._lock:
            for s in slots:
                self.inventory.remove_pod(ns, pod_name(name, job.status.restarts, s.replica))

    def _realize(self, job: AITrainingJob, slots: list[GangSlot]) -> None:
        """Create and bind the whole gang; on any failure, roll it back so no partial gang holds cards."""
        ns = str(job.metadata["namespace"])
        try:
            _ignore(409, lambda: self.kube.create(ns, "services", build_service(job)))
            if _has_rank_table(slots):
                cm = build_rank_table_config_map(job, slots, {})
                try:
                    self.kube.create(ns, "configmaps", cm)
                    with self._lock:
                        self._rank_tables[(ns, cm["metadata"]["name"])] = cm["data"]
                except ApiException as exc:
                    if exc.status != 409:
                        raise
            pods = self._pods_for(job, slots)
            self._parallel(lambda pod: _ignore(409, lambda: self.kube.create(ns, "pods", pod)), pods)
            self._parallel(
                lambda pod: self._bind(
                    ns, pod["metadata"]["name"], pod["metadata"]["annotations"][PLANNED_NODE_ANNOTATION]
                ),
                pods,
            )
        except Exception as exc:
            reason = exc.reason if isinstance(exc, ApiException) else str(exc)
            log.warning("gang %s/%s failed to bind, rolling back: %s", ns, job.metadata["name"], reason)
            self._back_off((ns, job.name))
            names = [pod_name(str(job.metadata["name"]), job.status.restarts, s.replica) for s in slots]
            self._parallel(lambda n: self._delete_pod(ns, n), names)
            self._unreserve(job, slots)
            self.metrics.bind_failures.inc()
            status = transition(
                job,
                job.status,
                JobPhase.PENDING,
                "BindFailed",
                f"binding the gang failed and was rolled back; will re-plan: {reason}",
                self.clock(),
                [(JobConditionType.PLACED, False)],
            )
            self._write(job, status.model_copy(update={"placement": []}), ("Warning", "BindFailed", str(reason)))
            return
        now = self.clock()
        status = transition(
            job,
            job.status,
            JobPhase.RUNNING,
            "Bound",
            f"all {len(slots)} replicas bound; " + (job.status.message or ""),
            now,
        )
        if status.start_time is None:
            status = status.model_copy(update={"start_time": now})
        if self._write(job, status, ("Normal", "Running", f"all {len(slots)} replicas bound")):
            with self._lock:
                self._failures.pop((ns, job.name), None)
                self._retry_at.pop((ns, job.name), None)
            span = job.status.span
            self.metrics.gang_bound(
                str(job.status.vendor or "mixed"),
                (now - _waiting_since(job)).total_seconds(),
                {"rack": span.racks, "zone": span.zones, "region": span.regions} if span else {},
            )

    def _bind(self, ns: str, name: str, node: str) -> None:
        try:
            self.kube.bind(ns, name, node)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Already bound (a resumed bind, or someone else): fine only if it went where we planned.
            bound = (self.kube.read(ns, "pods", name).get("spec") or {}).get("nodeName")
            if bound != node:
                raise BindError(f"pod {name} is bound to {bound}, not the planned {node}") from exc

    def _delete_pod(self, ns: str, name: str) -> None:
        _ignore(404, lambda: self.kube.delete_pod(ns, name))

    # -- API helpers --------------------------------------------------------------------------------

    def _parallel(self, fn: Callable[[T], object], items: Iterable[T]) -> None:
        """Run fn over items on the API worker pool; re-raise the first failure after all finish."""
        futures = [self._pool.submit(fn, item) for item in items]
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err

    def _write(self, job: AITrainingJob, status: AITrainingJobStatus, *events: tuple[str, str, str]) -> bool:
        key = (job.namespace, job.name)
        wire = status.model_dump(mode="json", by_alias=True)
        if not self._patch_status(key, wire):
            return False
        with self._lock:
            if key in self._jobs:
                self._jobs[key]["status"] = wire
        for event in events:
            self._event(job, *event)
        return True

    def _patch_status(self, key: JobKey, wire: dict[str, Any]) -> bool:
        try:
            self.kube.patch_job_status(key[0], key[1], wire)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False  # deleted meanwhile; the DELETED event will drop it
            raise

    def _event(self, job: AITrainingJob, type_: str, reason: str, message: str) -> None:
        meta = job.metadata
        ns = str(meta["namespace"])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": ns},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "AITrainingJob",
                "name": meta["name"],
                "namespace": ns,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": "suanli"},
            "reportingComponent": "suanli",
            "reportingInstance": "suanli",
        }
        # Events are best-effort: never let their failure stop a gang.
        self._pool.submit(_ignore_all, lambda: self.kube.create(ns, "events", body))


class BindError(RuntimeError):
    """A pod of the gang could not be bound where the plan put it."""


def _ignore(status: int, call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != status:
            raise


def _ignore_all(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:
        log.debug("best-effort API call failed: %s", exc)


def _waiting_since(job: AITrainingJob) -> datetime:
    """When the current gang started waiting: the restart for a restarted gang, else the job's creation."""
    for cond in job.status.conditions:
        if cond.type == JobConditionType.RESTARTING:
            return cond.last_transition_time
    created = str(job.metadata.get("creationTimestamp") or "")
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return api_now()


@dataclass(frozen=True)
class Preempting:
    """A job that preempted gangs and waits for their pods to go."""

    until: float
    """Monotonic time after which it stops waiting (and holding nodes) and may choose victims again."""
    priority: int
    pods: frozenset[tuple[str, str]]
    nodes: frozenset[str]
    """The victims' nodes, held for it against lower-priority jobs meanwhile."""


def _has_rank_table(slots: list[GangSlot]) -> bool:
    """An HCCL rank table is for all-Ascend gangs (two Ascend models included); a gang mixing Ascend with other
    vendors runs a framework that bridges the collectives, and its Ascend pods get no table."""
    return bool(slots) and all(VENDOR_BY_NAME[s.vendor].needs_rank_table for s in slots)


def _split(key: str) -> JobKey:
    ns, _, name = key.partition("/")
    return (ns, name)


def _what(placement: Placement) -> str:
    """`H100 (nvidia)`, or for a mixed gang `21 H100 (nvidia) + 3 Ascend910B (huawei)`."""
    if placement.vendor != "mixed":
        return f"{placement.model} ({placement.vendor})"
    counts: dict[tuple[str, str], int] = {}
    for r in placement.replicas:
        counts[(r.model, r.vendor)] = counts.get((r.model, r.vendor), 0) + 1
    return " + ".join(f"{n} {model} ({vendor})" for (model, vendor), n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _first_device(link_domains: tuple[int, ...], chosen: str | None) -> int:
    """Physical index of the first card of the first chosen link domain (cards are numbered ring by ring)."""
    if not chosen:
        return 0
    first = chosen.split("+", 1)[0]
    return sum(link_domains[: int(first)]) if first.isdigit() else 0
