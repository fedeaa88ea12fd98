"""The engine: the parts of Suanli's scheduler wired together, and the threads that run them.

One job's path, forward:
  feeds (informer.py: list+watch of nodes, pods, jobs)
    → cache (cache.py: the view, assumed reservations)       → work queue (queue.py: one worker per job)
    → scheduling cycle (scheduler.py: plan on a snapshot, assume)
    → binder (binder.py: the plan on the Service (plans.py), create+bind, roll back)
    → job workers (reconciler.py: the pure phase machine in lifecycle.py, applied)
    → status writer and events (status.py: optimistic concurrency)
Every write goes through kubeapi.py (retries, the leadership fence); leader.py decides who may write.
All state needed to resume lives in the API server (the plan on the job's Service or in its status, the
pods), so a killed operator restarts without duplicating or losing anything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..api.aitrainingjob import PLURAL
from ..api.base import GROUP, VERSION
from ..api.base import now as api_now
from ..inventory import Inventory
from ..metrics import Metrics, StateCollector
from ..settings import OperatorSettings
from .binder import Binder
from .cache import ClusterCache, JobKey
from .informer import Informer
from .kubeapi import KubeApi
from .leader import LeaseElector
from .queue import WorkQueue
from .reconciler import Reconciler
from .scheduler import Scheduler
from .status import EventRecorder, StatusWriter

log = logging.getLogger("suanli.engine")


def identity() -> str:
    """This replica's name in the Lease and in its requests' User-Agent: the pod name in a cluster."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class Controller:
    """Builds the engine's parts, feeds them, and runs the scheduling loop and the job workers."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: OperatorSettings | None = None,
        clock: Callable[[], datetime] = api_now,
        metrics: Metrics | None = None,
        elector: LeaseElector | None = None,
        kube: KubeApi | None = None,
    ) -> None:
        self.settings = settings = settings or OperatorSettings()
        self.metrics = metrics = metrics or Metrics()
        self.elector = elector
        self.clock = clock
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        """Typed clients for the feeds' list and watch calls only; every write goes through `kube`."""
        self.kube = kube or KubeApi(
            api, settings.request_timeout_seconds, metrics.api_request,
            guard=elector.may_write if elector is not None else None,
            user_agent=f"suanli/{elector.identity if elector is not None else identity()}",
        )
        self.queue: WorkQueue[JobKey] = WorkQueue()
        self.cache = ClusterCache(
            settings.inventory, settings.scheduler_name,
            notify=self._notify, on_stranger=self._stranger, on_job_deleted=self._job_deleted,
        )
        self.events = EventRecorder(self.kube)
        self.writer = StatusWriter(self.kube, self.cache, self.events)
        self.binder = Binder(self.kube, self.cache, self.writer, settings, metrics, clock, self._gang_done)
        self.scheduler = Scheduler(
            self.cache, self.binder, self.writer, settings, metrics, clock,
            request_preemption=lambda key, by: self.reconciler.preempt(key, by),
        )
        self.reconciler = Reconciler(
            self.kube, self.cache, self.queue, self.writer, self.events, settings, metrics, clock,
            leading=self.leading, on_gone=self.scheduler.forget, wake_scheduler=self.wake, busy=self.binder.busy,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feeds: list[Informer] = []
        self._last_full = 0.0
        self._woken_at = -1
        self._metered: dict[JobKey, float] = {}
        """Monotonic time up to which each running job's accelerator-seconds have been counted."""
        if elector is not None:
            elector.on_change = self._leadership
        self.metrics.registry.register(StateCollector(self))

    # -- what tests, probes and metrics read -------------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        """The live inventory (tests and start-up logs; the cycle plans on snapshots of it)."""
        return self.cache.inventory

    @property
    def cycles(self) -> int:
        return self.scheduler.cycles

    def leading(self) -> bool:
        return self.elector is None or self.elector.may_write()

    def metrics_inventory(self) -> Inventory:
        """The last cycle's snapshot: scrapes read it without taking any lock the scheduler uses."""
        return self.scheduler.published

    def job_phases(self) -> Counter[str]:
        return self.cache.phases()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- feeds (any thread) ------------------------------------------------------------------------

    def on_node(self, event: str | None, node: dict[str, Any]) -> None:
        self.cache.on_node(event, node)

    def on_pod(self, event: str | None, pod: dict[str, Any]) -> None:
        self.cache.on_pod(event, pod)

    def on_job(self, event: str | None, job: dict[str, Any]) -> None:
        self.cache.on_job(event, job)

    def _notify(self, keys: Iterable[JobKey]) -> None:
        """An event: the jobs it concerns go to their workers; the scheduler wakes only if free capacity may
        have changed (most pod events — a pod starting, an assumed pod seen bound — change nothing it reads;
        jobs that start waiting wake it through their worker)."""
        for key in keys:
            self.queue.add(key)
        generation = self.cache.inventory.generation
        if generation != self._woken_at:
            self._woken_at = generation
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _stranger(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        log.warning("pod %s/%s names scheduler %s but was not created by Suanli for an AITrainingJob; "
                    "it holds nothing and stays unbound", meta.get("namespace"), meta.get("name"),
                    self.settings.scheduler_name)
        if self.leading():
            self.events.record_pod(
                pod, "Warning", "NotScheduled",
                f"schedulerName {self.settings.scheduler_name} binds only the pods it creates for an AITrainingJob; "
                "this pod will stay Pending: submit an AITrainingJob, or use another scheduler",
            )

    def _job_deleted(self, key: JobKey) -> None:
        self.queue.forget(key)
        self.scheduler.forget(key)

    def _gang_done(self, key: JobKey, outcome: str) -> None:
        self.scheduler.gang_done(key, outcome)
        self.queue.add(key)
        self._wake.set()

    def _leadership(self, leading: bool) -> None:
        if leading:
            self._last_full = 0.0  # a new leader looks at every job once
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------------

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

    def start_feeds(self, timeout: float = 120) -> None:
        """List and watch jobs, nodes and pods (any scheduler's); return once all three are listed."""
        lag = self.metrics.watch_lag.labels
        self._feeds = [
            Informer("aitrainingjobs",
                     lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw),
                     self.on_job, observe_lag=lag("aitrainingjobs").observe),
            Informer("nodes", self.core.list_node, self.on_node, observe_lag=lag("nodes").observe),
            Informer("pods", self.core.list_pod_for_all_namespaces, self.on_pod, observe_lag=lag("pods").observe),
        ]
        for feed in self._feeds:
            feed.start()
        for feed in self._feeds:
            if not feed.synced.wait(timeout):
                raise RuntimeError(f"could not list {feed.kind} within {timeout:.0f} s; see the log")

    def start(self) -> None:
        self.events.start()
        if self.elector is not None:
            self.elector.start()
        self.reconciler.start(self.settings.gang_workers)
        self._thread = threading.Thread(target=self._run, name="suanli-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        for feed in self._feeds:
            feed.stop()
        self._stop.set()
        self._wake.set()
        self.queue.shut_down()
        if self._thread:
            self._thread.join(timeout=30)
        self.binder.stop()
        self.scheduler.stop()
        self.events.stop()
        if self.elector is not None:
            self.elector.stop(release=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.settings.resync_seconds)
            self._wake.clear()
            if not self.leading():
                continue  # a standby keeps its view current but never writes
            try:
                if time.monotonic() - self._last_full >= self.settings.resync_seconds:
                    self._last_full = time.monotonic()
                    for key in self.cache.job_keys():  # the safety net for a missed event
                        self.queue.add(key)
                self.scheduler.schedule()
                self._meter()
            except Exception:  # the loop must outlive any one bad object or API hiccup
                log.exception("scheduling cycle failed; retrying")
                time.sleep(1)

    # -- tests -------------------------------------------------------------------------------------

    def schedule(self) -> None:
        """One scheduling cycle in the caller's thread."""
        self.scheduler.schedule()

    def reconcile_queued(self) -> None:
        """Process every queued job in the caller's thread (tests; the workers do this when started)."""
        while (key := self.queue.get(timeout=0)) is not None:
            try:
                self.reconciler.reconcile(key)
            finally:
                self.queue.done(key)

    def drain(self, timeout: float | None = None) -> None:
        """Wait for every gang being bound and every queued status write."""
        self.binder.drain(timeout)
        self.scheduler.drain()

    # -- metering ----------------------------------------------------------------------------------

    def _meter(self) -> None:
        """Accrue accelerator-seconds of running gangs since the last pass (at most once a second: cycles
        can follow each other closely while gangs bind)."""
        now = time.monotonic()
        if self._metered and now - max(self._metered.values()) < 1.0:
            return
        running = {k: j for k, j in self.cache.jobs() if (j.get("status") or {}).get("phase") == "Running"}
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
