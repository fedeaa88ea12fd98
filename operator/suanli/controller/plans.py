"""Where a gang's plan is kept between planning and Running: an annotation on the job's headless Service.

The plan must be durable before the first pod exists, so that a new leader finishes the gang where it was
planned and never plans it again over pods already bound. It used to be a status write (`Scheduling`) of its
own; the Service is created before any pod anyway, so carrying the plan costs no extra write, and the job
gets one status write per gang (Running, with the placement) instead of two. Plans too large for an
annotation still go to the status (`Scheduling`), which a new leader resumes as before.

Resuming from the Service is checked, not trusted — tenants may edit Services in their namespace, and a plan
names the nodes a gang gets: the plan must be this job's (owner uid) and of the gang's generation, and every
pod of that generation that exists must agree with it: planned there (each pod carries its planned node),
and made from this very version of the Service (each pod carries the Service's resourceVersion, which any
edit changes). A gang with no pod yet has nothing to resume and is planned afresh; one whose plan is
missing, edited or disagrees is rolled back — its pods deleted — and planned afresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from ..api.aitrainingjob import AITrainingJob, AITrainingJobStatus
from ..render.gang import (
    PLAN_ANNOTATION,
    PLAN_VERSION_ANNOTATION,
    PLANNED_NODE_ANNOTATION,
    REPLICA_LABEL,
)
from .cache import owner_uid

MAX_PLAN_BYTES = 64_000
"""Above this (~400 replicas, with link domains and topology) a plan goes to the job's status instead: an
object's annotations may hold 256 KiB in all, every watcher of Services (CoreDNS, the endpoint controllers;
kube-proxy skips headless ones) gets the whole object, and for a gang that large one status write more is
nothing beside its pods' writes."""


def encode(plan: AITrainingJobStatus) -> str | None:
    """The plan as the Service annotation's value, or None when it is too large for one."""
    text = orjson.dumps(plan.model_dump(mode="json", by_alias=True, exclude_none=True)).decode()
    return text if len(text) <= MAX_PLAN_BYTES else None


def terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def decode(service: Mapping[str, Any] | None, job: AITrainingJob, live: Sequence[Mapping[str, Any]]) -> (
        AITrainingJobStatus | str):
    """The plan the Service carries for `job`'s current gang, or why it cannot be resumed.

    `live` are the gang's existing pods (not terminating, at least one): each must have been made from this
    version of the Service, for the plan's node.
    """
    if service is None:
        return "its Service is gone"
    meta = service.get("metadata") or {}
    if owner_uid(service) != job.metadata.get("uid"):
        return "its Service is not this job's"
    text = (meta.get("annotations") or {}).get(PLAN_ANNOTATION)
    if not text:
        return "its Service carries no plan"
    try:
        plan = AITrainingJobStatus.model_validate(orjson.loads(text))
    except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
        return f"its plan cannot be read: {str(exc).splitlines()[0]}"
    if plan.generation != job.status.generation or not plan.placement:
        return f"its plan is for gang {plan.generation}, not {job.status.generation}"
    nodes = {r.replica: r.node for r in plan.placement}
    version = meta.get("resourceVersion")
    for pod in live:
        pod_meta = pod.get("metadata") or {}
        if (pod_meta.get("annotations") or {}).get(PLAN_VERSION_ANNOTATION) != version:
            return f"its Service changed since pod {pod_meta.get('name')} was made from it"
        replica = (pod_meta.get("labels") or {}).get(REPLICA_LABEL, "")
        planned = (pod_meta.get("annotations") or {}).get(PLANNED_NODE_ANNOTATION)
        if not replica.isdigit() or nodes.get(int(replica)) != planned:
            return f"pod {pod_meta.get('name')} is not where its plan puts replica {replica}"
        bound_to = (pod.get("spec") or {}).get("nodeName")
        if bound_to and bound_to != planned:
            return f"pod {pod_meta.get('name')} is bound to {bound_to}, not the planned {planned}"
    return plan
