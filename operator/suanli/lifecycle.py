"""The job's phase machine: every status a job can get, and what to do about it.

Pending → Running → Succeeded | Failed (Scheduling between the first two only for a gang whose plan is too
large for its Service, controller/plans.py), with Restarting in between when a replica fails or
vanishes, its node is lost or its accelerator turns unhealthy, or a higher-priority job preempts it. Pure:
the engine gathers the job's pods and a verdict per node and calls `advance`, or reports what scheduling and
binding did (`placed`, `bound`, `bind_failed`, `unschedulable`, `preempting`, `invalid`), and applies the
returned status and actions. All state lives in the job's status and its pods (and a plan in flight on its
Service), so a restarted operator reaches the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .api.aitrainingjob import AITrainingJob, AITrainingJobStatus, JobConditionType, JobPhase, RestartEvent
from .api.aitrainingjob import ReplicaPlacement as StatusReplica
from .api.aitrainingjob import Span as StatusSpan
from .api.base import Condition, ConditionStatus, Vendor, set_condition
from .inventory.pods import format_link_domains
from .placement import Placement
from .render.gang import GENERATION_LABEL, REPLICA_LABEL, SPEC_HASH_ANNOTATION, spec_hash
from .topology import Level


class NodeVerdict(StrEnum):
    """What the controller knows of a node that runs a replica."""

    OK = "OK"
    LOST = "Lost"
    """Deleted, or its Ready condition False/Unknown for longer than the operator's grace (a node still
    within it is OK: the job workers re-check it when the grace runs out)."""
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
    preempted = event == RestartEvent.PREEMPTED
    if event in policy.restart_on and (preempted or status.restarts < policy.max_restarts):
        avoided = sorted({*status.bad_nodes, *bad_nodes})
        count = (
            f"preemption {status.preemptions + 1}, not counted against maxRestarts"
            if preempted
            else f"{status.restarts + 1} of {policy.max_restarts}"
        )
        new = transition(
            job,
            status,
            JobPhase.RESTARTING,
            event.value,
            f"{detail}; restarting the whole gang ({count})"
            + (f", avoiding {', '.join(bad_nodes)}" if bad_nodes else ""),
            now,
            [(JobConditionType.RESTARTING, True), (JobConditionType.READY, False)],
        ).model_copy(
            update={
                "restarts": status.restarts + (0 if preempted else 1),
                "preemptions": status.preemptions + (1 if preempted else 0),
                "ready_replicas": 0,
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
    gang = [p for p in pods if generation_of(p) == job.status.generation]
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
    generation = status.generation
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

    if phase == JobPhase.RUNNING:
        vanished = sorted(
            [pod_name_of(job, r.replica) for r in status.placement if r.replica not in by_replica]
            + [_name(p) for p in gang if (p.get("metadata") or {}).get("deletionTimestamp")]
        )
        if vanished:
            return _restart_or_fail(
                job, status, RestartEvent.REPLICA_LOST,
                f"replica pod(s) {', '.join(vanished)} deleted or evicted by someone else", [], gang, now,
            )

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

    ready = sum(1 for p in by_replica.values() if _phase(p) == "Running")
    if ready != status.ready_replicas:
        decision.status = status.model_copy(update={"ready_replicas": ready})
    return decision


def pod_name_of(job: AITrainingJob, replica: int) -> str:
    return f"{job.name}-g{job.status.generation}-{replica}"


# -- what scheduling and binding report ---------------------------------------------------------------


def _waiting(job: AITrainingJob, reason: str, message: str, now: datetime) -> AITrainingJobStatus:
    return transition(job, job.status, JobPhase.PENDING, reason, message, now, [(JobConditionType.PLACED, False)])


def unschedulable(job: AITrainingJob, message: str, now: datetime) -> AITrainingJobStatus:
    """Nothing fits now; `message` says why, per candidate."""
    return _waiting(job, "Unschedulable", message, now)


def preempting(job: AITrainingJob, victims: Sequence[str], now: datetime) -> AITrainingJobStatus:
    """Lower-priority gangs are being restarted to make room; the job waits for their pods to go."""
    names = ", ".join(victims)
    return _waiting(job, "Preempting", f"preempting {len(victims)} lower-priority gang(s) to make room: {names}", now)


def invalid(job: AITrainingJob, message: str, now: datetime) -> AITrainingJobStatus:
    """The spec passed the API server but cannot be scheduled or rendered; `message` names the field and the
    fix. The job waits (Pending) until its spec changes, so a fix is picked up without re-creating it."""
    return _waiting(job, "InvalidSpec", message, now)


def bind_failed(job: AITrainingJob, reason: str, now: datetime) -> AITrainingJobStatus:
    """Binding failed after the per-request retries and the gang was rolled back; it will be planned again."""
    return _waiting(job, "BindFailed", f"binding the gang failed and was rolled back; will re-plan: {reason}", now)\
        .model_copy(update={"placement": [], "span": None})


def describe(placement: Placement) -> str:
    """`H100 (nvidia)`, or for a mixed gang `21 H100 (nvidia) + 3 Ascend910B (huawei)`."""
    if placement.vendor != "mixed":
        return f"{placement.model} ({placement.vendor})"
    counts: dict[tuple[str, str], int] = {}
    for r in placement.replicas:
        counts[(r.model, r.vendor)] = counts.get((r.model, r.vendor), 0) + 1
    return " + ".join(f"{n} {model} ({vendor})" for (model, vendor), n in sorted(counts.items(), key=lambda kv: -kv[1]))


def placed(job: AITrainingJob, placement: Placement, now: datetime, took_ms: float) -> AITrainingJobStatus:
    """The gang has a plan: the status it will have while being bound (Scheduling), which the binder persists
    on the job's Service, or in the status when too large, so a restarted operator finishes it."""
    mixed = placement.vendor == "mixed"
    preferred = job.spec.topology.preferred
    met = "" if preferred is None else (
        f"; preferred {preferred.value} met" if placement.preferred_met else f"; preferred {preferred.value} not met"
    )
    message = (
        f"placed {len(placement.replicas)} replicas on {describe(placement)} across "
        f"{placement.span.get(Level.RACK, 0)} rack(s), {placement.span.get(Level.ZONE, 0)} zone(s) "
        f"in {took_ms:.1f} ms{met}"
    )
    status = transition(job, job.status, JobPhase.SCHEDULING, "Placed", message, now, [(JobConditionType.PLACED, True)])
    return status.model_copy(
        update={
            # A mixed gang has no one vendor: status.model says "mixed", each replica its candidate.
            "vendor": None if mixed else Vendor(placement.vendor),
            "model": placement.model,
            "candidate_index": placement.candidate_index,
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
                for r in placement.replicas
            ],
            "span": StatusSpan(
                nodes=placement.span.get(Level.NODE, 0),
                racks=placement.span.get(Level.RACK, 0),
                zones=placement.span.get(Level.ZONE, 0),
                regions=placement.span.get(Level.REGION, 0),
            ),
        }
    )


def bound(job: AITrainingJob, now: datetime) -> AITrainingJobStatus:
    """Every replica is bound: Running (the pods' own phases are judged by `advance` from here on)."""
    replicas = len(job.status.placement)
    status = transition(
        job, job.status, JobPhase.RUNNING, "Bound",
        f"all {replicas} replicas bound; " + (job.status.message or ""), now,
    )
    return status if status.start_time is not None else status.model_copy(update={"start_time": now})


def waiting_since(job: AITrainingJob, fallback: datetime) -> datetime:
    """When the current gang started waiting: the restart for a restarted gang, else the job's creation."""
    for cond in job.status.conditions:
        if cond.type == JobConditionType.RESTARTING:
            return cond.last_transition_time
    created = str(job.metadata.get("creationTimestamp") or "")
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return fallback
