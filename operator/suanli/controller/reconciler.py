"""The job workers: one job at a time per worker, each job on one worker at a time (the work queue's rule).

For a job that has been placed, a worker gathers its pods and a verdict per node, asks the pure phase
machine (`lifecycle.advance`) what comes next and applies it: delete pods (gracefully, by uid), write the
status (optimistic concurrency: a conflict re-queues the job to decide again on the fresh version), record
events, delete an expired job. It also restarts a running gang that the scheduler chose to preempt — here,
not in the scheduler, so no other worker can write that job meanwhile — and keeps an Ascend gang's rank
table current. Waiting jobs are the scheduler's; a job that is gone has its per-job state dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import lifecycle
from ..api import Vendor
from ..api.aitrainingjob import AITrainingJob, JobPhase
from ..lifecycle import Decision, NodeVerdict
from ..metrics import Metrics
from ..render import build_rank_table_config_map
from ..render.gang import GENERATION_LABEL, REPLICA_LABEL, rank_table_name
from ..render.ranktable import COMPLETED_MARK, RANK_TABLE_KEY
from ..settings import OperatorSettings
from .cache import ClusterCache, JobKey
from .kubeapi import KubeApi, NotLeader
from .queue import ShutDown, WorkQueue
from .slots import has_rank_table, slots_from_status
from .status import Conflict, EventRecorder, StatusWriter

log = logging.getLogger("suanli.reconciler")
READY_WRITE_INTERVAL_S = 1.0
TABLE_WRITE_INTERVAL_S = 1.0
"""How long a rank table still waiting for pods is held before it is written; a completed one goes at once."""


class Reconciler:
    def __init__(
        self,
        kube: KubeApi,
        cache: ClusterCache,
        queue: WorkQueue[JobKey],
        writer: StatusWriter,
        events: EventRecorder,
        settings: OperatorSettings,
        metrics: Metrics,
        clock: Callable[[], datetime],
        leading: Callable[[], bool],
        on_gone: Callable[[JobKey], None],
        wake_scheduler: Callable[[], None],
        busy: Callable[[JobKey], bool],
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.queue = queue
        self.writer = writer
        self.events = events
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.leading = leading
        self.on_gone = on_gone
        self.wake_scheduler = wake_scheduler
        self.busy = busy
        """Whether the binder is working on a job (its status is the binder's until it is done)."""
        self._preempt: dict[JobKey, str] = {}
        self._tables: dict[JobKey, tuple[int, dict[str, str]]] = {}
        """Rank-table data last written per job, with its gang generation: unchanged costs no API call."""
        self._ready_due: dict[JobKey, float] = {}
        """When each job's held-back readyReplicas is to be written."""
        self._table_due: dict[JobKey, float] = {}
        """When each job's held-back, not yet completed rank table is to be written."""
        self._down_seen: dict[str, tuple[datetime, datetime]] = {}
        """Per node not Ready: its condition's transition time and when this replica first saw that outage."""
        self._waiting_on: dict[JobKey, frozenset[str]] = {}
        """The not-Ready nodes each job's gang is waiting out: logged once per outage, not on every reconcile."""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, workers: int) -> None:
        for i in range(workers):
            thread = threading.Thread(target=self._work, name=f"suanli-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def preempt(self, key: JobKey, by: str) -> None:
        """Restart `key`'s running gang for a higher-priority job (described by `by`)."""
        with self._lock:
            self._preempt[key] = by
        self.queue.add(key)

    def _work(self) -> None:
        while True:
            try:
                key = self.queue.get()
            except ShutDown:
                return
            if key is None:
                continue
            try:
                if self.leading():
                    self.reconcile(key)
                self.queue.forget(key)
            except Conflict:
                self.queue.add(key)  # the job changed: decide again on the version just re-read
            except NotLeader:
                pass  # the new leader decides; this replica re-queues everything if it leads again
            except Exception as exc:
                delay = self.queue.add_rate_limited(key)
                log.warning("job %s/%s: reconcile failed, retrying in %.2fs: %s", *key, delay, exc)
            finally:
                self.queue.done(key)

    # -- one job -----------------------------------------------------------------------------------

    def reconcile(self, key: JobKey) -> None:
        raw = self.cache.job(key)
        if raw is None:
            with self._lock:
                self._preempt.pop(key, None)
                self._tables.pop(key, None)
                self._ready_due.pop(key, None)
                self._table_due.pop(key, None)
                self._waiting_on.pop(key, None)
            self.on_gone(key)
            return
        phase = (raw.get("status") or {}).get("phase")
        if phase in (None, JobPhase.PENDING, JobPhase.RESTARTING):
            self.wake_scheduler()
        if phase == JobPhase.SCHEDULING or self.busy(key):
            return  # the binder owns the job until its gang is bound or rolled back
        job = self.cache.job_of(raw)
        if isinstance(job, str):
            return  # the scheduler reports an unreadable spec
        uid = str(job.metadata.get("uid"))
        pods = self.cache.pods_of(uid)
        with self._lock:
            by = self._preempt.pop(key, None)
        if by is not None and job.status.phase == JobPhase.RUNNING:
            log.info("preempting %s/%s for %s", *key, by)
            self.apply(job, lifecycle.preempt(job, pods, by, self.clock()))
            return
        now = self.clock()
        verdicts: dict[str, NodeVerdict] = {}
        waiting: dict[str, float] = {}
        for node in {n for p in pods if (n := (p.get("spec") or {}).get("nodeName"))}:
            verdicts[node], left = self.verdict(node, now)
            if left > 0:
                waiting[node] = left
        self._wait_out(key, waiting)
        decision = lifecycle.advance(job, pods, verdicts, now)
        if not self._hold_ready_count(key, job, decision):
            self.apply(job, decision)
        if (decision.phase == JobPhase.RUNNING and job.status.placement
                and job.status.vendor in (None, Vendor.HUAWEI)):
            self._refresh_rank_table(job, pods)

    def _wait_out(self, key: JobKey, waiting: dict[str, float]) -> None:
        """Re-queue the job for the end of the first grace to run out (no event comes then), and log each node
        the gang starts waiting on."""
        with self._lock:
            before = self._waiting_on.pop(key, frozenset())
            if waiting:
                self._waiting_on[key] = frozenset(waiting)
        for node in sorted(waiting.keys() - before):
            log.info("job %s/%s: node %s is not Ready; the gang restarts on NodeLost if it stays so %.0f s more",
                     *key, node, waiting[node])
        if waiting:
            self.queue.add_after(key, min(waiting.values()))

    def _hold_ready_count(self, key: JobKey, job: AITrainingJob, decision: Decision) -> bool:
        """Hold a mere change of readyReplicas for up to a second and write the count then: a gang's pods come
        up one event each, and a status write per pod is an API write and a watch event for every watcher."""
        only_ready = (
            not decision.delete_pods and not decision.events and not decision.delete_job
            and decision.status.ready_replicas != job.status.ready_replicas
            and decision.status.model_copy(update={"ready_replicas": job.status.ready_replicas}) == job.status
        )
        return only_ready and self._held(self._ready_due, key, READY_WRITE_INTERVAL_S)

    def _table_due_now(self, key: JobKey, completed: bool) -> bool:
        """Whether a changed rank table is to be written now. HCCL waits for `completed`, which goes at once; a
        table still initializing changes with each pod's IP and device annotation — a patch per pod event of a
        growing ConfigMap for a large gang — so its changes are held for a second and written as one."""
        if completed:
            with self._lock:
                self._table_due.pop(key, None)
            return True
        return not self._held(self._table_due, key, TABLE_WRITE_INTERVAL_S)

    def _held(self, dues: dict[JobKey, float], key: JobKey, interval: float) -> bool:
        """Whether `key`'s write is held back: the first change starts an `interval` (the job is re-queued for
        its end) and the changes meanwhile wait for it; once it is over, the write goes out."""
        now = time.monotonic()
        with self._lock:
            due = dues.get(key)
            if due is None:
                dues[key] = now + interval
                self.queue.add_after(key, interval)
                return True
            if now < due:
                return True  # already due to be written
            del dues[key]
        return False

    def verdict(self, node: str, now: datetime) -> tuple[NodeVerdict, float]:
        """The node's verdict, and the seconds a node that is not Ready has left of its grace
        (settings.node_lost_grace_seconds; 0 when none): it counts as lost only once they are over.

        The grace runs from the Ready condition's transition time, so a new leader does not grant a node
        that has long been down a fresh one — or from when this replica first saw the outage, if that is
        earlier: a transition time ahead of our clock must not stretch the grace by the clocks' skew."""
        if not self.cache.node_ready(node):
            since = self.cache.node_not_ready_since(node)
            with self._lock:
                seen = self._down_seen.get(node)
                if since is None:
                    self._down_seen.pop(node, None)
                    return NodeVerdict.LOST, 0.0
                if seen is None or seen[0] != since:  # a new outage
                    seen = self._down_seen[node] = (since, now)
            left = self.settings.node_lost_grace_seconds - (now - min(since, seen[1])).total_seconds()
            return (NodeVerdict.OK, left) if left > 0 else (NodeVerdict.LOST, 0.0)
        if node in self._down_seen:  # back up: forget the outage (the common case takes no lock)
            with self._lock:
                self._down_seen.pop(node, None)
        inventory = self.cache.inventory
        with self.cache.lock:
            found = inventory.get(node)
            if found is not None and inventory.allocated_cards(node) > found.usable_cards:
                return NodeVerdict.UNHEALTHY, 0.0
        return NodeVerdict.OK, 0.0

    def apply(self, job: AITrainingJob, decision: Decision) -> None:
        ns = job.namespace
        if decision.phase == JobPhase.RESTARTING and job.status.phase != JobPhase.RESTARTING:
            self.metrics.gang_restarted(ns, decision.status.reason or "Unknown")
        for name in decision.delete_pods:
            self._delete_pod(ns, name)
        if decision.status != job.status:
            self.writer.write(job, decision.status, *decision.events)
            if decision.phase in (JobPhase.PENDING, JobPhase.RESTARTING):
                self.wake_scheduler()
        else:
            for event in decision.events:
                self.events.record(job, *event)
        if decision.delete_job:
            try:
                self.kube.delete_job(ns, job.name, uid=str(job.metadata.get("uid")))
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    def _delete_pod(self, ns: str, name: str) -> None:
        """Delete gracefully; the cards stay counted until the pod is really gone (its DELETED event)."""
        seen = self.cache.pod(ns, name)
        if seen is not None and (seen.get("metadata") or {}).get("deletionTimestamp"):
            return  # already terminating
        uid = (seen or {}).get("metadata", {}).get("uid")
        try:
            self.kube.delete(ns, "pods", name, grace_seconds=self.settings.delete_grace_seconds, uid=uid)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _refresh_rank_table(self, job: AITrainingJob, pods: list[dict[str, Any]]) -> None:
        """Complete the Ascend rank table as the gang's pods get what it needs (HCCL waits for `completed`)."""
        slots = slots_from_status(job, self.cache.inventory)
        if not has_rank_table(slots):
            return
        generation = str(job.status.generation)
        by_replica = {
            int((p["metadata"].get("labels") or {}).get(REPLICA_LABEL, -1)): p
            for p in pods
            if (p["metadata"].get("labels") or {}).get(GENERATION_LABEL) == generation
        }
        cm = build_rank_table_config_map(job, slots, by_replica)
        name = rank_table_name(job.name)
        key = (job.namespace, job.name)
        with self._lock:
            written = self._tables.get(key)
        if written == (job.status.generation, cm["data"]):
            return
        if not self._table_due_now(key, COMPLETED_MARK in cm["data"][RANK_TABLE_KEY]):
            return
        try:
            stored = self.kube.merge_patch(job.namespace, "configmaps", name, {"data": cm["data"]})
        except ApiException as exc:
            if exc.status != 404:
                raise
            stored = self.kube.create(job.namespace, "configmaps", cm)
        with self._lock:
            self._tables[key] = (job.status.generation, stored.get("data") or cm["data"])
