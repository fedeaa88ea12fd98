"""Placement: the pure gang + topology planner.

    from suanli.placement import Candidate, GangRequest, plan, Placement, Unplaceable
    from suanli.topology import Level

    outcome = plan(inventory, GangRequest(
        key="team-a/llama", replicas=64, min_replicas=32, accelerators_per_replica=8,
        candidates=(Candidate("huawei", "Ascend910B"), Candidate("nvidia", "H100", min_memory_gib=80)),
        cpu_millis=32_000, memory_bytes=256 * 2**30,
        required_level=Level.ZONE, preferred_level=Level.RACK,
    ))
    if isinstance(outcome, Placement):
        for replica in outcome.replicas:   # index, node, resource, count, link_domains, domains
            ...                            # render pod `replica.index` bound to `replica.node`
    else:
        print(outcome.summary); print(outcome.reasons)   # one list of lines per candidate

Reserve a placement by feeding its pods (with ``spec.nodeName`` and the ``suanli.io/link-domain``
annotation) to ``Inventory.upsert_pod``; the planner never mutates the inventory.
"""

from suanli.placement.planner import EXACT_ZONE_SEARCH, plan
from suanli.placement.preemption import RunningGang, choose_victims
from suanli.placement.request import Candidate, GangRequest, Placement, ReplicaPlacement, Toleration, Unplaceable

__all__ = [
    "EXACT_ZONE_SEARCH",
    "Candidate",
    "GangRequest",
    "Placement",
    "ReplicaPlacement",
    "RunningGang",
    "Toleration",
    "Unplaceable",
    "choose_victims",
    "plan",
]
