"""The binder: turns a planned gang into bound pods, or rolls it back so no partial gang holds cards.

Runs on a gang worker, off the scheduling cycle (Kueue's assume-then-apply-asynchronously): the cycle has
already assumed the gang's cards in the cache. Steps, each safe to repeat after a crash:
1. the headless Service, carrying the plan (controller/plans.py) — a new leader resumes it, never re-plans
   over pods already made; a plan too large for an annotation is written to the job's status (Scheduling)
   instead — with, alongside, the ConfigMap of the launch variables all replicas share and, for an
   all-Ascend gang, the rank table reset for this generation;
2. every pod created and then bound at once, pod by pod in parallel (a pod's bind does not wait for the
   other pods' creates); objects that already exist are adopted only if this job's uid owns them;
3. one status write: Running, with the placement — or, if anything failed after the per-request retries,
   every pod deleted, the assumption forgotten and the job back to Pending (BindFailed) with a back-off.
A job deleted meanwhile is cleaned up (its pods, Service and ConfigMaps, by uid) and forgotten; a replica
that lost leadership stops at once and writes nothing (the new leader resumes from the Service or status).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from .. import lifecycle
from ..api.aitrainingjob import AITrainingJob, AITrainingJobStatus
from ..metrics import Metrics
from ..render import GangSlot, build_rank_table_config_map, build_service, rank_table_stale
from ..render.gang import (
    PLAN_ANNOTATION,
    PLAN_VERSION_ANNOTATION,
    PLANNED_NODE_ANNOTATION,
    build_launch_config_map,
    launch_config_map_name,
    rank_table_name,
)
from ..settings import OperatorSettings
from . import plans
from .cache import ClusterCache, JobKey, owner_uid
from .kubeapi import KubeApi, NotLeader
from .slots import as_reserved, has_rank_table, render_gang, render_pods
from .status import Conflict, StatusWriter

log = logging.getLogger("suanli.binder")
T = TypeVar("T")


class BindError(RuntimeError):
    """A pod or object of the gang could not be made where and as the plan says."""


class Stopping(RuntimeError):
    """The operator is shutting down: a gang in flight is left as it is, for the next leader to resume (its
    plan is persisted), rather than rolled back and marked BindFailed on the way out."""


class JobGone(RuntimeError):
    """The job was deleted (or re-created under the same name) while its gang was being bound."""


class Binder:
    def __init__(
        self,
        kube: KubeApi,
        cache: ClusterCache,
        writer: StatusWriter,
        settings: OperatorSettings,
        metrics: Metrics,
        clock: Callable[[], datetime],
        on_done: Callable[[JobKey, str], None],
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.writer = writer
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.on_done = on_done
        """Called with (job, outcome) when a gang's work ends: "bound", "failed" (rolled back: back off) or
        "abandoned" (the job changed or went, or leadership lapsed: decide again from the fresh view)."""
        self._gangs = ThreadPoolExecutor(settings.gang_workers, thread_name_prefix="suanli-gang")
        self._requests = ThreadPoolExecutor(settings.bind_workers, thread_name_prefix="suanli-api")
        self._busy: set[JobKey] = set()
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._deleted: dict[JobKey, frozenset[str]] = {}
        """The uids of the pods each job's last roll-back deleted: gone, however late the watch says so."""

    def busy(self, key: JobKey) -> bool:
        with self._lock:
            return key in self._busy

    def submit(self, job: AITrainingJob, slots: list[GangSlot], plan: AITrainingJobStatus | None) -> None:
        """Bind `job`'s gang on a gang worker; `plan` (a Scheduling status), when given, is persisted first
        (None: `job.status` is a plan being resumed). The caller has assumed the gang's cards in the cache."""
        self._on_worker(job, self._run, job, slots, plan)

    def _on_worker(self, job: AITrainingJob, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._busy.add((job.namespace, job.name))
            future = self._gangs.submit(fn, *args)
            self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    # -- a gang interrupted mid-bind (a new leader, a failed Running write) --------------------------

    def interrupted_plan(self, job: AITrainingJob, live: list[dict[str, Any]]) -> AITrainingJobStatus | str:
        """The plan on `job`'s Service that made `live` (its current gang's pods), or why it must not be
        resumed. One read; raises the API's error when the Service cannot be read (try again later)."""
        try:
            service: dict[str, Any] | None = self.kube.read(job.namespace, "services", job.name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            service = None
        return plans.decode(service, job, live)

    def deleted(self, key: JobKey) -> frozenset[str]:
        """Uids of the pods the last roll-back of `key` deleted (the watch may not have said so yet)."""
        with self._lock:
            return self._deleted.get(key, frozenset())

    def forget(self, key: JobKey) -> None:
        with self._lock:
            self._deleted.pop(key, None)

    def discard(self, job: AITrainingJob, live: list[dict[str, Any]], why: str) -> None:
        """Delete an interrupted gang's pods that cannot be resumed (`why`); the job is then planned afresh."""
        log.warning("gang %s/%s: not resuming %d pod(s) (%s); deleting them and planning again",
                    job.namespace, job.name, len(live), why)
        self.writer.events.record(
            job, "Warning", "PlanDiscarded",
            f"an interrupted gang was not resumed ({why}); its pods are deleted and it is planned again",
        )

        def run() -> None:
            key = (job.namespace, job.name)
            try:
                self._roll_back(job, live)
            except Exception as exc:  # left for the next cycle, which finds them again
                log.warning("gang %s/%s: deleting the unresumable pods: %s", *key, exc)
            finally:
                with self._lock:
                    self._busy.discard(key)
                self.on_done(key, "abandoned")

        self._on_worker(job, run)

    def drain(self, timeout: float | None = None) -> None:
        """Wait for every gang being bound (tests, and a clean shutdown)."""
        with self._lock:
            pending = list(self._futures)
        wait(pending, timeout=timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._gangs.shutdown(wait=False, cancel_futures=True)
        self._requests.shutdown(wait=False, cancel_futures=True)

    # -- one gang ----------------------------------------------------------------------------------

    def _run(self, job: AITrainingJob, slots: list[GangSlot], plan: AITrainingJobStatus | None) -> None:
        key = (job.namespace, job.name)
        outcome = "abandoned"
        try:
            outcome = self._bind_gang(job, slots, plan)
        except NotLeader:
            log.info("gang %s/%s: leadership lapsed; stopping without writing", *key)
            self.cache.forget(key)
        except Stopping:
            log.info("gang %s/%s: operator stopping; the next leader resumes it from its plan", *key)
            self.cache.forget(key)
        except Exception:
            log.exception("gang %s/%s: binding crashed; it is resumed from its plan", *key)
            self.cache.forget(key)
            outcome = "failed"
        finally:
            with self._lock:
                self._busy.discard(key)  # before on_done: whoever it wakes must see the job free
            self.on_done(key, outcome)

    def _bind_gang(self, job: AITrainingJob, slots: list[GangSlot], plan: AITrainingJobStatus | None) -> str:
        key = (job.namespace, job.name)
        uid = str(job.metadata.get("uid"))
        failure_events: list[tuple[str, str, str]] = []
        text = plans.encode(plan) if plan is not None else None
        if plan is not None and text is None:
            # Too large for the Service: persisted in the status (Scheduling), resumed from there; an earlier
            # attempt's plan on the Service is removed ("").
            text = ""
            try:
                stored = self.writer.write(job, plan, ("Normal", "Placed", plan.message or ""))
            except Conflict:
                stored = None  # the job changed since it was planned: decide again from the new version
            if stored is None:  # ... or it is gone
                self.cache.forget(key)
                return "abandoned"
            job = stored
        elif plan is not None:
            # From here the job carries its plan: the pods render from it and the Running write records it,
            # over the resourceVersion it was planned from (a job changed meanwhile is resumed, see plans.py).
            # Running's event says where it was placed; a gang rolled back says it before BindFailed.
            job = job.model_copy(update={"status": plan})
            failure_events.append(("Normal", "Placed", plan.message or ""))
        created: list[dict[str, Any]] = []
        gang = render_gang(job, slots, self.settings)
        pods = gang.pods
        try:
            if self._stopping.is_set():
                raise Stopping("operator stopping")
            version = self._prepare(job, slots, uid, text, gang.launch_env)
            for pod in pods:
                pod["metadata"]["annotations"][PLAN_VERSION_ANNOTATION] = version
            self._check_alive(key, uid)
            self._parallel(lambda pod: self._create_and_bind(job, pod, uid, created), pods)
            self._check_alive(key, uid)
        except (NotLeader, Stopping):
            raise
        except JobGone:
            log.info("gang %s/%s: job deleted while binding; removing what was made", *key)
            self._clean_up(job, uid, created)
            self.cache.forget(key)
            return "abandoned"
        except Exception as exc:
            if self._stopping.is_set():  # e.g. the launch ConfigMap's request cancelled by the pool's shutdown
                raise Stopping("operator stopping") from exc
            reason = exc.reason if isinstance(exc, ApiException) else str(exc) or type(exc).__name__
            log.warning("gang %s/%s failed to bind, rolling back: %s", *key, reason)
            self._roll_back(job, created)
            self.cache.forget(key)
            self.metrics.bind_failures.inc()
            self._write_quietly(job, lifecycle.bind_failed(job, str(reason), self.clock()),
                                *failure_events, ("Warning", "BindFailed", str(reason)))
            return "failed"
        self.cache.finish(key)
        now = self.clock()
        status = lifecycle.bound(job, now)
        # One event says both: "all N replicas bound; placed N replicas on H100 (nvidia) across 1 rack(s) ...".
        if self._write_quietly(job, status, ("Normal", "Running", status.message or "")):
            span = job.status.span
            self.metrics.gang_bound(
                str(job.status.vendor or "mixed"),
                (now - lifecycle.waiting_since(job, now)).total_seconds(),
                {"rack": span.racks, "zone": span.zones, "region": span.regions} if span else {},
            )
        return "bound"

    def _prepare(self, job: AITrainingJob, slots: list[GangSlot], uid: str, plan: str | None,
                 launch_env: dict[str, str]) -> str:
        """What the pods need before they exist: the headless Service their hostnames resolve through, carrying
        `plan` (the encoded plan; "" for none; None to leave it as it is); alongside it the ConfigMap of the launch
        variables the replicas share; and, for an Ascend gang, a rank table reset to this generation's
        `initializing` one. Returns the Service's resourceVersion, which each pod records."""
        try:
            launch = self._requests.submit(self._put_launch_env, job, uid, launch_env) if launch_env else None
        except RuntimeError as exc:  # the request pool shut down: the operator is stopping
            raise Stopping("operator stopping") from exc
        try:
            service = self._adopt_or_create(job.namespace, "services", build_service(job, plan or None), uid)
            annotations = (service.get("metadata") or {}).get("annotations") or {}
            if plan is not None and annotations.get(PLAN_ANNOTATION, "") != plan:  # an earlier gang's Service
                service = self.kube.merge_patch(job.namespace, "services", job.name,
                                                {"metadata": {"annotations": {PLAN_ANNOTATION: plan or None}}})
            if has_rank_table(slots):
                self._reset_rank_table(job, slots)
        finally:
            if launch is not None:
                wait([launch])
        if launch is not None:
            launch.result()
        return str((service.get("metadata") or {}).get("resourceVersion"))

    def _put_launch_env(self, job: AITrainingJob, uid: str, data: dict[str, str]) -> None:
        """Create the launch ConfigMap, or make an earlier gang's hold exactly `data` (a new generation's)."""
        body = build_launch_config_map(job, data)
        stored = self._adopt_or_create(job.namespace, "configmaps", body, uid)
        old = stored.get("data") or {}
        if old != data:  # a merge patch keeps keys it does not name: name the stale ones as null
            self.kube.merge_patch(job.namespace, "configmaps", body["metadata"]["name"],
                                  {"data": {**{k: None for k in old if k not in data}, **data}})

    def _write_quietly(self, job: AITrainingJob, status: AITrainingJobStatus, *events: tuple[str, str, str]) -> bool:
        """Write a status; a conflict or a vanished job is left to the next reconcile of the fresh version."""
        try:
            return self.writer.write(job, status, *events) is not None
        except Conflict:
            return False

    def _check_alive(self, key: JobKey, uid: str) -> None:
        if self.cache.uid_of(key) != uid:
            raise JobGone(f"{key[0]}/{key[1]}")

    def _create_and_bind(self, job: AITrainingJob, pod: dict[str, Any], uid: str, created: list[Any]) -> None:
        ns, name = job.namespace, pod["metadata"]["name"]
        node = pod["metadata"]["annotations"][PLANNED_NODE_ANNOTATION]
        self._check_alive((ns, job.name), uid)
        stored = self._adopt_or_create(ns, "pods", pod, uid)
        planned = ((stored.get("metadata") or {}).get("annotations") or {}).get(PLANNED_NODE_ANNOTATION)
        if not (stored.get("spec") or {}).get("nodeName") and planned != node:
            # Ours, left unbound by an earlier attempt planned elsewhere: its spec is stale, make it anew.
            self.kube.delete(ns, "pods", name, grace_seconds=0, uid=stored["metadata"].get("uid"))
            stored = self.kube.create(ns, "pods", pod)
        created.append(stored or pod)
        if stored:
            self.cache.store_pod(stored)
        if (stored.get("spec") or {}).get("nodeName") == node:
            return  # adopted, already bound where planned (a resumed gang)
        try:
            self.kube.bind(ns, name, node)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Already bound (a resumed bind, or a retried one that had landed): fine only if it went where planned.
            current = self.kube.read(ns, "pods", name)
            bound_to = (current.get("spec") or {}).get("nodeName")
            if bound_to != node:
                raise BindError(f"pod {name} is bound to {bound_to}, not the planned {node}") from exc
            self.cache.store_pod(current)
            return
        if stored:
            self.cache.store_pod({**stored, "spec": {**stored["spec"], "nodeName": node}})

    def _adopt_or_create(self, ns: str, plural: str, body: dict[str, Any], uid: str) -> dict[str, Any]:
        """Create `body`; if its name is taken, use the existing object only if this job (uid) owns it."""
        name = body["metadata"]["name"]
        try:
            return self.kube.create(ns, plural, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self.kube.read(ns, plural, name)
        if owner_uid(existing) != uid:
            raise BindError(
                f"{plural[:-1]} {ns}/{name} already exists and does not belong to this job: delete or rename it"
            )
        return existing

    def _reset_rank_table(self, job: AITrainingJob, slots: list[GangSlot]) -> None:
        """A new generation starts from an `initializing` table: never the previous gang's `completed` one."""
        cm = build_rank_table_config_map(job, slots, {})
        try:
            self.kube.create(job.namespace, "configmaps", cm)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self.kube.read(job.namespace, "configmaps", cm["metadata"]["name"])
        if owner_uid(existing) != str(job.metadata.get("uid")):
            raise BindError(f"configmap {job.namespace}/{cm['metadata']['name']} exists and is not this job's")
        if rank_table_stale(existing.get("data"), job.status.generation):  # else: this gang's, kept on resume
            # Every key is rewritten; the resourceVersion makes it a replace of exactly what was read.
            self.kube.merge_patch(job.namespace, "configmaps", cm["metadata"]["name"],
                                  {"metadata": {"resourceVersion": existing["metadata"]["resourceVersion"]},
                                   "data": cm["data"]})

    def _roll_back(self, job: AITrainingJob, created: list[dict[str, Any]]) -> None:
        """Delete every pod this gang made (by uid: never a stranger's pod of the same name); those never
        bound hold nothing and go at once, bound ones get their grace period."""
        def delete(pod: dict[str, Any]) -> None:
            name = pod["metadata"]["name"]
            seen = self.cache.pod(job.namespace, name)
            grace = self.settings.delete_grace_seconds if seen and (seen.get("spec") or {}).get("nodeName") else 0
            try:
                self.kube.delete(job.namespace, "pods", name, grace_seconds=grace, uid=pod["metadata"].get("uid"))
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
        self._parallel(delete, created)
        uids = frozenset(str(uid) for p in created if (uid := (p.get("metadata") or {}).get("uid")))
        with self._lock:
            self._deleted[(job.namespace, job.name)] = uids

    def _clean_up(self, job: AITrainingJob, uid: str, created: list[dict[str, Any]]) -> None:
        """After the job's deletion: remove what this worker made (the garbage collector would, later).
        Deletes carry the objects' own uids, so a job re-created under the same name loses nothing."""
        items: list[tuple[str, str, str | None]] = [
            ("pods", p["metadata"]["name"], p["metadata"].get("uid")) for p in created
        ]
        for plural, name in (("services", job.name), ("configmaps", rank_table_name(job.name)),
                             ("configmaps", launch_config_map_name(job.name))):
            try:
                found = self.kube.read(job.namespace, plural, name)
            except ApiException:
                continue
            if owner_uid(found) == uid:
                items.append((plural, name, found["metadata"].get("uid")))

        def delete(item: tuple[str, str, str | None]) -> None:
            try:
                self.kube.delete(job.namespace, item[0], item[1], grace_seconds=0, uid=item[2])
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
        try:
            self._parallel(delete, items)
        except Exception as exc:
            log.warning("cleaning up after deleted job %s/%s: %s (the garbage collector finishes it)",
                        job.namespace, job.name, exc)

    def _parallel(self, fn: Callable[[T], object], items: Iterable[T]) -> None:
        """Run fn over items on the request pool; re-raise the first failure after all finish."""
        futures = []
        for item in items:
            if self._stopping.is_set():
                break
            try:
                futures.append(self._requests.submit(fn, item))
            except RuntimeError:  # the pool shut down under us
                break
        errors = [f.exception() if not f.cancelled() else None for f in futures]
        for err in errors:
            if isinstance(err, NotLeader):
                raise err
        if self._stopping.is_set():
            raise Stopping("operator stopping")
        for err in errors:
            if err is not None:
                raise err


def reserved(job: AITrainingJob, slots: list[GangSlot], settings: OperatorSettings) -> list[dict[str, Any]]:
    """What assuming `job`'s gang holds: its pods as if bound to their planned nodes."""
    return as_reserved(render_pods(job, slots, settings))
