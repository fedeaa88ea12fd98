"""The job API's terms → the planner's: one AITrainingJob becomes one GangRequest."""

from __future__ import annotations

from ..api.aitrainingjob import AITrainingJob
from ..inventory.quantity import bytes_of, cpu_millis
from ..placement import Candidate, GangRequest, Toleration
from ..topology import Level


def gang_request(job: AITrainingJob) -> GangRequest:
    spec = job.spec
    requests = spec.template.resources.requests
    return GangRequest(
        key=f"{job.metadata.get('namespace', 'default')}/{job.metadata['name']}",
        replicas=spec.replicas,
        min_replicas=spec.min_replicas or spec.replicas,
        accelerators_per_replica=spec.accelerators_per_replica,
        candidates=tuple(
            Candidate(c.vendor.value, c.model, float(c.min_memory_gib) if c.min_memory_gib else None)
            for c in spec.candidates
        ),
        cpu_millis=cpu_millis(requests["cpu"]) if "cpu" in requests else 0,
        memory_bytes=bytes_of(requests["memory"]) if "memory" in requests else 0,
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
