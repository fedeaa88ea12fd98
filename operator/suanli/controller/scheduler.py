"""The scheduling cycle: plan waiting gangs on a snapshot, assume the winners, hand them to the binder.

One cycle (`schedule`), in order:
1. resume: every gang interrupted mid-bind (a restarted operator, a new leader, a Running write that
   failed) that no binder works on gets its planned cards assumed first, so nothing planned below can take
   them — a waiting job with pods of its current gang resumes the plan on its Service (plans.py), or has
   those pods deleted when that plan cannot be trusted; a job in Scheduling resumes the plan in its status;
2. heads: waiting jobs by priority, then age — skipping those in back-off, being bound, being written,
   or already tried against an unchanged inventory;
3. a snapshot of the inventory, planned on without holding the cache's lock (Volcano's session);
4. per job: a placement is reserved in the snapshot, assumed in the cache and handed to the binder; no
   placement means preemption of strictly lower-priority gangs if that makes room, else an Unschedulable
   status. A job the planner or renderer cannot handle gets InvalidSpec and every other job goes on.
Only the leader runs cycles. Status writes of waiting jobs go to a small pool off the cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from .. import lifecycle
from ..api.aitrainingjob import PRIORITY_MIN, AITrainingJob, AITrainingJobStatus, JobPhase
from ..inventory import Inventory
from ..metrics import Metrics
from ..placement import GangRequest, Placement, RunningGang, Unplaceable, choose_victims, plan
from ..settings import OperatorSettings
from . import plans
from .binder import Binder, reserved
from .cache import ClusterCache, JobKey
from .kubeapi import NotLeader
from .requests import RequestError, gang_request
from .slots import slots_from_plan, slots_from_status
from .status import Conflict, StatusWriter

log = logging.getLogger("suanli.scheduler")
WAITING = (None, JobPhase.PENDING, JobPhase.RESTARTING)
PREEMPTION_GRACE_S = 60.0
"""How long a preempting gang waits for its victims' pods to go before it may choose victims again."""


@dataclass(frozen=True)
class Preempting:
    """A job that preempted gangs and waits for their pods to go."""

    until: float
    """Monotonic time after which it stops waiting (and holding nodes) and may choose victims again."""
    priority: int
    pods: frozenset[tuple[str, str]]
    nodes: frozenset[str]
    """The victims' nodes, held for it against lower-priority jobs meanwhile."""


class Scheduler:
    def __init__(
        self,
        cache: ClusterCache,
        binder: Binder,
        writer: StatusWriter,
        settings: OperatorSettings,
        metrics: Metrics,
        clock: Callable[[], datetime],
        request_preemption: Callable[[JobKey, str], None],
    ) -> None:
        self.cache = cache
        self.binder = binder
        self.writer = writer
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.request_preemption = request_preemption
        """Asks the reconciler to restart a running gang for a preemptor (described by the string)."""
        self._writes = ThreadPoolExecutor(4, thread_name_prefix="suanli-status")
        self._writing: set[JobKey] = set()
        self._failures: dict[JobKey, int] = {}
        self._retry_at: dict[JobKey, float] = {}
        """Back-off of jobs whose gang failed to bind (monotonic time before which they are not planned)."""
        self._tried: dict[JobKey, tuple[int, str]] = {}
        """(inventory generation, job resourceVersion) at a job's last failed plan: unchanged, don't re-plan."""
        self._preempting: dict[JobKey, Preempting] = {}
        self._lock = threading.Lock()
        self.cycles = 0
        self.published: Inventory = cache.snapshot()
        self._published_at = float("-inf")
        """The last cycle's snapshot: what the metrics collector reads, never the live inventory."""

    # -- per-job state, dropped with the job -------------------------------------------------------

    def forget(self, key: JobKey) -> None:
        with self._lock:
            for state in (self._failures, self._retry_at, self._tried, self._preempting):
                state.pop(key, None)
        self.binder.forget(key)

    def gang_done(self, key: JobKey, outcome: str) -> None:
        """The binder finished `key`: back off after a rollback, start afresh after success."""
        with self._lock:
            if outcome == "failed":
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self._retry_at[key] = time.monotonic() + min(60.0, 2.0 ** (failures - 1))
            elif outcome == "bound":
                self._failures.pop(key, None)
                self._retry_at.pop(key, None)

    def _held_back(self, key: JobKey, now: float) -> bool:
        return self._retry_at.get(key, 0.0) > now or key in self._writing or self.binder.busy(key)

    # -- the cycle ---------------------------------------------------------------------------------

    def schedule(self) -> None:
        self.cycles += 1
        now = time.monotonic()
        jobs = self.cache.unplaced_jobs()
        with self._lock:
            candidates = [(k, raw) for k, raw in jobs if not self._held_back(k, now)]
        # 1. resume persisted plans before anything else is planned
        interrupted: set[JobKey] = set()
        for key, raw in candidates:
            phase = (raw.get("status") or {}).get("phase")
            if self.cache.assumed(key):
                continue
            if phase == JobPhase.SCHEDULING:
                self._resume(key, raw)
            elif phase in WAITING and self._resume_interrupted(key, raw):
                interrupted.add(key)
        # 2. heads, highest priority first, then oldest
        waiting = [(k, raw) for k, raw in candidates
                   if (raw.get("status") or {}).get("phase") in WAITING and k not in interrupted]
        waiting.sort(key=lambda kr: (-int((kr[1].get("spec") or {}).get("priority", 0)),
                                     str(kr[1]["metadata"].get("creationTimestamp", "")), kr[0]))
        # 3. one snapshot for the whole cycle (none when nobody waits, unless the metrics' view is old)
        generation = self.cache.inventory.generation
        with self._lock:
            todo = [(k, raw) for k, raw in waiting
                    if self._tried.get(k) != (generation, str(raw["metadata"].get("resourceVersion")))]
        if not todo and now - self._published_at < self.settings.resync_seconds:
            return
        snapshot = self.cache.snapshot()
        self._published_at = now
        for key, raw in todo:
            rv = str(raw["metadata"].get("resourceVersion"))
            with self._lock:
                if self._tried.get(key) == (snapshot.generation, rv):
                    continue
            try:
                self._schedule_one(key, raw, snapshot)
            except NotLeader:
                return
            except Exception as exc:  # one job's bug must not stop everyone's scheduling
                log.exception("job %s/%s: scheduling failed", *key)
                self._invalid(key, raw, f"the operator could not schedule this job: {exc}")
        self.published = snapshot

    def _resume(self, key: JobKey, raw: dict[str, Any]) -> None:
        job = self.cache.job_of(raw)
        if isinstance(job, str):
            return
        slots = slots_from_status(job, self.cache.inventory)
        self.cache.assume(key, str(job.metadata.get("uid")), reserved(job, slots, self.settings))
        log.info("resuming the bind of %s/%s (%d replicas)", *key, len(slots))
        self.binder.submit(job, slots, None)

    def _resume_interrupted(self, key: JobKey, raw: dict[str, Any]) -> bool:
        """Resume (or roll back) a waiting job's gang whose pods exist; False when it has none (plan it)."""
        status = raw.get("status") or {}
        generation = int(status.get("restarts") or 0) + int(status.get("preemptions") or 0)  # before parsing
        uid = str(raw["metadata"].get("uid"))
        gang = [p for p in self.cache.pods_of(uid) if lifecycle.generation_of(p) == generation]
        if not gang:
            return False
        deleted = self.binder.deleted(key)
        if any(plans.terminating(p) or str(p["metadata"].get("uid")) in deleted for p in gang):
            return True  # a rolled-back gang's pods still going: their names are not free yet
        job = self.cache.job_of(raw)
        if isinstance(job, str):
            return False  # reported as InvalidSpec by the planning below
        try:
            plan = self.binder.interrupted_plan(job, gang)
        except Exception as exc:  # its Service cannot be read now: neither resume nor plan it this cycle
            log.warning("job %s/%s: reading the plan of its interrupted gang: %s", *key, exc)
            return True
        if isinstance(plan, str):
            self.binder.discard(job, gang, plan)
            return True
        job = job.model_copy(update={"status": plan})
        slots = slots_from_status(job, self.cache.inventory)
        self.cache.assume(key, uid, reserved(job, slots, self.settings))
        log.info("resuming the interrupted bind of %s/%s (%d replicas, %d pods made)", *key, len(slots), len(gang))
        self.binder.submit(job, slots, None)
        return True

    def _schedule_one(self, key: JobKey, raw: dict[str, Any], snapshot: Inventory) -> None:
        job = self.cache.job_of(raw)
        if isinstance(job, str):
            self._invalid(key, raw, job)
            return
        if job.status.reason == "InvalidSpec" and job.status.observed_generation == job.metadata.get("generation"):
            return  # still the spec we refused: wait for the user to change it
        try:
            request = gang_request(job)
        except RequestError as exc:
            self._invalid(key, raw, str(exc))
            return
        held = self._held_for_others(key, job.spec.priority)
        if held:
            request = replace(request, avoid_nodes=request.avoid_nodes | held)
        t0 = time.monotonic()
        outcome = plan(snapshot, request)
        if isinstance(outcome, Unplaceable):
            with self._lock:
                self._tried[key] = (snapshot.generation, str(raw["metadata"].get("resourceVersion")))
            # A job whose gang could not be made (its namespace is being deleted, a quota or admission refuses
            # its pods) must not restart other gangs for room it cannot use: it preempts again only once it
            # has bound.
            with self._lock:
                failed_to_bind = self._failures.get(key, 0) > 0 or job.status.reason == "BindFailed"
            may_preempt = self.settings.preemption and job.spec.priority > PRIORITY_MIN and not failed_to_bind
            if may_preempt and self._preempt(key, job, request, snapshot):
                return
            message = outcome.summary + "".join(
                f"\n- {c.describe()}: {'; '.join(r)}" for c, r in zip(request.candidates, outcome.reasons, strict=False)
            )
            if left_out := snapshot.skipped_summary({c.vendor for c in job.spec.candidates}):
                message += f"\n- {left_out}"
            if job.status.message != message or job.status.reason != "Unschedulable":
                self._write_async(job, lifecycle.unschedulable(job, message, self.clock()),
                                  ("Warning", "Unschedulable", outcome.summary))
            return
        self._place(key, job, outcome, snapshot, 1000 * (time.monotonic() - t0))

    def _place(self, key: JobKey, job: AITrainingJob, placement: Placement, snapshot: Inventory, ms: float) -> None:
        slots = slots_from_plan(job, placement, snapshot)
        pods = reserved(job, slots, self.settings)  # renders every pod: a render error fails this job only
        for pod in pods:
            snapshot.upsert_pod(pod)
        with self._lock:
            self._preempting.pop(key, None)
            self._tried.pop(key, None)
        self.cache.assume(key, str(job.metadata.get("uid")), pods)
        self.binder.submit(job, slots, lifecycle.placed(job, placement, self.clock(), ms))

    # -- preemption --------------------------------------------------------------------------------

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

    def _preempt(self, key: JobKey, job: AITrainingJob, request: GangRequest, snapshot: Inventory) -> bool:
        """Restart lower-priority running gangs so this one fits; True while it waits on such victims."""
        now = time.monotonic()
        with self._lock:
            waiting = self._preempting.get(key)
        if waiting is not None and now < waiting.until and any(snapshot.holds(p) for p in waiting.pods):
            return True  # the victims' pods are still going: do not pick more
        victims = choose_victims(snapshot, request, job.spec.priority, self._running_gangs(key))
        if victims is None:
            with self._lock:
                self._preempting.pop(key, None)
            return False
        with self._lock:
            self._preempting[key] = Preempting(
                until=now + PREEMPTION_GRACE_S,
                priority=job.spec.priority,
                pods=frozenset(p for v in victims for p in v.pods),
                nodes=frozenset(n for v in victims for n in v.nodes),
            )
            self._tried.pop(key, None)  # re-plan as soon as the victims' pods are gone
        by = f"{job.namespace}/{job.name} (priority {job.spec.priority})"
        for victim in victims:
            ns, _, name = victim.key.partition("/")
            log.info("preempting %s for %s", victim.key, by)
            self.request_preemption((ns, name), by)
        self._write_async(job, lifecycle.preempting(job, [v.key for v in victims], self.clock()),
                          ("Normal", "Preempting", f"preempting {', '.join(v.key for v in victims)}"))
        return True

    def _running_gangs(self, exclude: JobKey) -> list[RunningGang]:
        out = []
        for key, raw in self.cache.jobs():
            status, spec = raw.get("status") or {}, raw.get("spec") or {}
            if key == exclude or self.binder.busy(key) or status.get("phase") != JobPhase.RUNNING:
                continue
            placed: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Placed"), {})
            uid = str(raw["metadata"].get("uid"))
            generation = int(status.get("restarts", 0)) + int(status.get("preemptions", 0))
            pods = tuple(
                (key[0], p["metadata"]["name"]) for p in self.cache.pods_of(uid)
                if ((p["metadata"].get("labels") or {}).get("suanli.io/generation")) == str(generation)
            )
            out.append(RunningGang(
                key=f"{key[0]}/{key[1]}",
                priority=int(spec.get("priority", 0)),
                # When this gang (generation) was placed: startTime is the job's first start only.
                started=str(placed.get("lastTransitionTime") or status.get("startTime") or ""),
                pods=pods,
                cards=len(status.get("placement") or []) * int(spec.get("acceleratorsPerReplica", 0)),
                nodes=tuple(sorted({str(r["node"]) for r in status.get("placement") or [] if r.get("node")})),
            ))
        return out

    # -- status writes of waiting jobs, off the cycle ----------------------------------------------

    def _invalid(self, key: JobKey, raw: dict[str, Any], message: str) -> None:
        status = raw.get("status") or {}
        if status.get("reason") == "InvalidSpec" and status.get("message") == message:
            return
        with self._lock:
            self._tried[key] = (-1, str(raw["metadata"].get("resourceVersion")))
        log.warning("job %s/%s cannot be scheduled: %s", *key, message)
        # An unreadable spec still gets a status: only metadata is needed to write it.
        job = AITrainingJob.model_construct(
            metadata=raw["metadata"], status=AITrainingJobStatus(), spec=cast(Any, None)
        )
        self._write_async(job, lifecycle.invalid(job, message[:4000], self.clock()),
                          ("Warning", "InvalidSpec", message))

    def _write_async(self, job: AITrainingJob, status: AITrainingJobStatus, *events: tuple[str, str, str]) -> None:
        key = (job.namespace, job.name)
        with self._lock:
            if key in self._writing:
                return
            self._writing.add(key)

        def work() -> None:
            try:
                self.writer.write(job, status, *events)
            except (Conflict, NotLeader):
                pass  # the fresh version is decided on the next cycle; a non-leader writes nothing
            except Exception as exc:
                log.warning("status of %s/%s not written: %s", *key, exc)
            finally:
                with self._lock:
                    self._writing.discard(key)

        self._writes.submit(work)

    def drain(self) -> None:
        """Wait for queued status writes (tests)."""
        while True:
            with self._lock:
                if not self._writing:
                    return
            time.sleep(0.01)

    def stop(self) -> None:
        self._writes.shutdown(wait=False, cancel_futures=True)
