"""The job's phase machine: from what the cluster shows, the next status and what to do about it.

Pending → Scheduling → Running → Succeeded | Failed, with Restarting in between when a replica fails, its
node is lost or its accelerator turns unhealthy. Pure: the controller gathers the job's pods and a verdict
per node, calls `advance`, and applies the returned actions. All state lives in the job's status and its
pods, so a restarted operator reaches the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .api.aitrainingjob import AITrainingJob, AITrainingJobStatus, JobConditionType, JobPhase, RestartEvent
from .api.base import Condition, ConditionStatus, set_condition
from .render.gang import GENERATION_LABEL, REPLICA_LABEL, SPEC_HASH_ANNOTATION, spec_hash


class NodeVerdict(StrEnum):
    """What the controller knows of a node that runs a replica."""

    OK = "OK"
    LOST = "Lost"
    """Deleted, or its Ready condition is False/Unknown."""
    UNHEALTHY = "Unhealthy"
    """Its agent reports fewer healthy accelerators than are allocated on it."""


@dataclass
class Decision:
    """The outcome of one step: the status to write and the side effects the controller must perform."""

    status: AITrainingJobStatus
    delete_pods: list[str] = field(default_factory=list)
    """Pod names to delete (a restarted or finished gang, stale generations)."""
    delete_job: bool = False
    """ttlSecondsAfterFinished has passed."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message) Kubernetes events to record on the job."""

    @property
    def phase(self) -> JobPhase | None:
        return self.status.phase


def generation_of(pod: Mapping[str, Any]) -> int:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels.get(GENERATION_LABEL, "-1"))
    except ValueError:
        return -1


def replica_of(pod: Mapping[str, Any]) -> int:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels.get(REPLICA_LABEL, "-1"))
    except ValueError:
        return -1


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _node(pod: Mapping[str, Any]) -> str | None:
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node else None


def _name(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def _condition(job: AITrainingJob, type_: str, status: bool, reason: str, message: str, now: datetime) -> Condition:
    return Condition(
        type=type_,
        status=ConditionStatus.TRUE if status else ConditionStatus.FALSE,
        reason=reason,
        message=message[:32000],
        last_transition_time=now,
        observed_generation=job.metadata.get("generation"),
    )


def transition(
    job: AITrainingJob,
    status: AITrainingJobStatus,
    phase: JobPhase,
    reason: str,
    message: str,
    now: datetime,
    conditions: Iterable[tuple[str, bool]] = (),
) -> AITrainingJobStatus:
    """Return `status` moved to `phase` with the given reason, message and condition updates."""
    conds = list(status.conditions)
    for type_, value in conditions:
        conds = set_condition(conds, _condition(job, type_, value, reason, message, now))
    return status.model_copy(
        update={
            "phase": phase,
            "reason": reason,
            "message": message,
            "conditions": conds,
            "observed_generation": job.metadata.get("generation"),
        }
    )


def _restart_or_fail(
    job: AITrainingJob,
    status: AITrainingJobStatus,
    event: RestartEvent,
    detail: str,
    bad_nodes: Sequence[str],
    gang: Sequence[Mapping[str, Any]],
    now: datetime,
) -> Decision:
    policy = job.spec.failure_policy
    doomed = [_name(p) for p in gang]
    if event in policy.restart_on and status.restarts < policy.max_restarts:
        avoided = sorted({*status.bad_nodes, *bad_nodes})
        new = transition(
            job,
            status,
            JobPhase.RESTARTING,
            event.value,
            f"{detail}; restarting the whole gang ({status.restarts + 1} of {policy.max_restarts})"
            + (f", avoiding {', '.join(bad_nodes)}" if bad_nodes else ""),
            now,
            [(JobConditionType.RESTARTING, True), (JobConditionType.READY, False)],
        ).model_copy(
            update={
                "restarts": status.restarts + 1,
                "bad_nodes": avoided,
                "previous_nodes": sorted({r.node for r in status.placement}) or status.previous_nodes,
                "placement": [],
            }
        )
        return Decision(new, delete_pods=doomed, events=[("Warning", event.value, new.message or "")])
    why = (
        f"{detail}; restart limit reached ({policy.max_restarts})"
        if event in policy.restart_on
        else f"{detail}; failurePolicy.restartOn does not include {event.value}"
    )
    new = transition(
        job,
        status,
        JobPhase.FAILED,
        event.value,
        why,
        now,
        [(JobConditionType.FAILED, True), (JobConditionType.READY, False)],
    )
    new = new.model_copy(update={"completion_time": now})
    return Decision(new, delete_pods=doomed, events=[("Warning", "Failed", why)])


def preempt(job: AITrainingJob, pods: Sequence[Mapping[str, Any]], by: str, now: datetime) -> Decision:
    """A higher-priority gang (`by`) needs this running gang's accelerators: restart it (re-queued behind
    that gang by priority) if failurePolicy allows a Preempted restart, else fail it; its pods go now."""
    gang = [p for p in pods if generation_of(p) == job.status.restarts]
    return _restart_or_fail(job, job.status, RestartEvent.PREEMPTED, f"preempted by {by}", [], gang, now)


def advance(
    job: AITrainingJob,
    pods: Sequence[Mapping[str, Any]],
    nodes: Mapping[str, NodeVerdict],
    now: datetime,
) -> Decision:
    """One step of the phase machine for a job that has been placed (or finished).

    `pods` are all pods the job owns, any generation; `nodes` gives a verdict for each node they run on
    (a node missing from it counts as lost). Pending jobs are the scheduler's business, not this function's.
    """
    status = job.status
    phase = status.phase or JobPhase.PENDING
    generation = status.restarts
    stale = [_name(p) for p in pods if generation_of(p) != generation and _phase(p) not in ("Succeeded", "Failed")]

    if phase.finished:
        ttl = job.spec.ttl_seconds_after_finished
        done = status.completion_time
        expired = ttl is not None and done is not None and now >= done + timedelta(seconds=ttl)
        leftovers = [_name(p) for p in pods if _phase(p) not in ("Succeeded", "Failed")]
        return Decision(status, delete_pods=leftovers, delete_job=expired)

    if phase in (JobPhase.PENDING, JobPhase.RESTARTING):
        # Waiting for the scheduler; only make sure no pod of an older gang still holds accelerators.
        return Decision(status, delete_pods=stale)

    gang = [p for p in pods if generation_of(p) == generation]
    by_replica = {replica_of(p): p for p in gang}
    expected = len(status.placement)

    failed = [p for p in gang if _phase(p) == "Failed"]
    if failed:
        names = ", ".join(sorted(_name(p) for p in failed))
        return _restart_or_fail(job, status, RestartEvent.POD_FAILED, f"replica pod(s) {names} failed", [], gang, now)

    lost = sorted({n for p in gang if (n := _node(p)) and nodes.get(n, NodeVerdict.LOST) == NodeVerdict.LOST})
    if lost:
        return _restart_or_fail(job, status, RestartEvent.NODE_LOST, f"node(s) {', '.join(lost)} lost", lost, gang, now)
    sick = sorted({n for p in gang if (n := _node(p)) and nodes.get(n) == NodeVerdict.UNHEALTHY})
    if sick:
        return _restart_or_fail(
            job,
            status,
            RestartEvent.ACCELERATOR_UNHEALTHY,
            f"accelerator(s) on {', '.join(sick)} reported unhealthy",
            sick,
            gang,
            now,
        )

    decision = Decision(status, delete_pods=stale)
    if phase == JobPhase.SCHEDULING:
        return decision  # the scheduler finishes binding; then the gang is judged here

    current = spec_hash(job)
    if any(((p.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION) != current for p in gang):
        refused = _condition(
            job,
            "SpecChangeRefused",
            True,
            "RunningGangImmutable",
            "spec changes do not apply to a running gang; delete and re-create the job to change it",
            now,
        )
        if not any(c.type == "SpecChangeRefused" and c.status == ConditionStatus.TRUE for c in status.conditions):
            decision.events.append(("Warning", "SpecChangeRefused", refused.message))
        decision.status = status.model_copy(update={"conditions": set_condition(list(status.conditions), refused)})
        status = decision.status

    if expected and len(by_replica) == expected and all(_phase(p) == "Succeeded" for p in by_replica.values()):
        new = transition(
            job,
            status,
            JobPhase.SUCCEEDED,
            "Completed",
            "all replicas succeeded",
            now,
            [(JobConditionType.SUCCEEDED, True), (JobConditionType.READY, False)],
        )
        decision.status = new.model_copy(update={"completion_time": now, "ready_replicas": 0})
        decision.events.append(("Normal", "Succeeded", "all replicas succeeded"))
        return decision

    ready = sum(1 for p in by_replica.values() if _phase(p) in ("Running", "Succeeded"))
    if ready != status.ready_replicas:
        decision.status = status.model_copy(update={"ready_replicas": ready})
    return decision
