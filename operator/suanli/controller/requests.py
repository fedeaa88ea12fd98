"""The job API's terms → the planner's: one AITrainingJob becomes one GangRequest.

A spec the API server accepted can still be one the planner cannot use (a CRD installed before a
validation rule, say); such a spec raises RequestError naming the field and the fix, and only that job
waits.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api.aitrainingjob import AITrainingJob
from ..inventory.quantity import QuantityError, bytes_of, cpu_millis
from ..placement import Candidate, GangRequest, Toleration
from ..topology import Level


class RequestError(ValueError):
    """The job's spec cannot be turned into a gang request; the message names the field and the fix."""


def _amount(requests: dict[str, object], name: str, parse: Callable[[object], int]) -> int:
    if name not in requests:
        return 0
    try:
        return parse(requests[name])
    except (QuantityError, ValueError, ArithmeticError) as exc:
        raise RequestError(
            f"spec.template.resources.requests.{name}: {exc}; write a non-negative quantity such as "
            f"{'4 or 500m' if name == 'cpu' else '16Gi'}"
        ) from None


def gang_request(job: AITrainingJob) -> GangRequest:
    spec = job.spec
    requests: dict[str, object] = dict(spec.template.resources.requests)
    cpu, memory = _amount(requests, "cpu", cpu_millis), _amount(requests, "memory", bytes_of)
    try:
        return _request(job, cpu, memory)
    except ValueError as exc:
        raise RequestError(f"spec: {exc}") from None


def _request(job: AITrainingJob, cpu: int, memory: int) -> GangRequest:
    spec = job.spec
    return GangRequest(
        key=f"{job.metadata.get('namespace', 'default')}/{job.metadata['name']}",
        replicas=spec.replicas,
        min_replicas=spec.min_replicas or spec.replicas,
        accelerators_per_replica=spec.accelerators_per_replica,
        candidates=tuple(
            Candidate(c.vendor.value, c.model, float(c.min_memory_gib) if c.min_memory_gib else None)
            for c in spec.candidates
        ),
        cpu_millis=cpu,
        memory_bytes=memory,
        required_level=Level.parse(spec.topology.required.value) if spec.topology.required else None,
        preferred_level=Level.parse(spec.topology.preferred.value) if spec.topology.preferred else None,
        avoid_nodes=frozenset(job.status.bad_nodes),
        allow_mixing=spec.allow_mixed_vendors,
        node_selector=tuple(sorted(spec.template.node_selector.items())),
        tolerations=tuple(
            Toleration(t.key or "", t.operator.value == "Exists", t.value or "", t.effect.value if t.effect else "")
            for t in spec.template.tolerations
        ),
        near_nodes=frozenset(job.status.previous_nodes),
    )
