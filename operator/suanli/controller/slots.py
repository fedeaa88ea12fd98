"""A gang's slots (replica → node, resource, vendor, image, link domains) from a fresh plan or from a persisted
plan carried as the job's status, and the pods rendered for them. Pure: inventory and job in, manifests out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.aitrainingjob import AITrainingJob
from ..inventory import Inventory, format_link_domains
from ..inventory.models import VENDOR_BY_NAME
from ..placement import Placement
from ..render import GangSlot, build_pod, rank_table_schema, spec_hash
from ..render.gang import PLANNED_NODE_ANNOTATION, share_launch_env
from ..settings import OperatorSettings


def first_device(link_domains: tuple[int, ...], chosen: str | None) -> int:
    """Physical index of the first card of the first chosen link domain (cards are numbered ring by ring)."""
    if not chosen:
        return 0
    first = chosen.split("+", 1)[0]
    return sum(link_domains[: int(first)]) if first.isdigit() else 0


def slots_from_plan(job: AITrainingJob, placement: Placement, inventory: Inventory) -> list[GangSlot]:
    slots = []
    for r in placement.replicas:
        node = inventory.get(r.node)
        domains = format_link_domains(r.link_domains) or None
        slots.append(
            GangSlot(
                r.index,
                r.node,
                r.resource,
                r.vendor,
                job.spec.candidates[r.candidate_index].image,
                domains,
                first_device=first_device(node.link_domains if node else (), domains),
                rank_table_schema=rank_table_schema(node.resource, node.labels) if node else None,
                node_taint_keys=node.tolerated_taint_keys if node else (),
            )
        )
    return slots


def slots_from_status(job: AITrainingJob, inventory: Inventory) -> list[GangSlot]:
    """The gang's slots from the plan recorded in its status (resuming an interrupted bind)."""
    out = []
    last = len(job.spec.candidates) - 1
    for r in job.status.placement:
        index = r.candidate_index if r.candidate_index is not None else job.status.candidate_index or 0
        candidate = job.spec.candidates[min(index, last)]
        node = inventory.get(r.node)
        resource = node.resource if node else VENDOR_BY_NAME[candidate.vendor].resources[0]
        out.append(
            GangSlot(
                r.replica,
                r.node,
                resource,
                candidate.vendor,
                candidate.image,
                r.link_domain,
                first_device=first_device(node.link_domains if node else (), r.link_domain),
                rank_table_schema=rank_table_schema(node.resource, node.labels) if node else None,
                node_taint_keys=node.tolerated_taint_keys if node else (),
            )
        )
    return out


def has_rank_table(slots: list[GangSlot]) -> bool:
    """An HCCL rank table is for all-Ascend gangs (two Ascend models included); a gang mixing Ascend with other
    vendors runs a framework that bridges the collectives, and its Ascend pods get no table."""
    return bool(slots) and all(VENDOR_BY_NAME[s.vendor].needs_rank_table for s in slots)


@dataclass(frozen=True)
class RenderedGang:
    pods: list[dict[str, Any]]
    """Unbound, each annotated with its planned node."""
    launch_env: dict[str, str]
    """The launch variables all replicas share: the data of the ConfigMap their envFrom names."""


def render_pods(job: AITrainingJob, slots: list[GangSlot], settings: OperatorSettings) -> list[dict[str, Any]]:
    """The gang's pods, unbound, each annotated with its planned node."""
    return render_gang(job, slots, settings).pods


def render_gang(job: AITrainingJob, slots: list[GangSlot], settings: OperatorSettings) -> RenderedGang:
    """The gang's pods, and the launch variables they share (render.gang.share_launch_env)."""
    digest = spec_hash(job)
    rank_table = has_rank_table(slots)
    pods = [
        build_pod(
            job,
            s,
            world=len(slots),
            generation=job.status.generation,
            scheduler_name=settings.scheduler_name,
            tolerate=settings.inventory.tolerated_taints,
            digest=digest,
            rank_table=rank_table,
        )
        for s in slots
    ]
    return RenderedGang(pods, share_launch_env(job, pods))


def as_reserved(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods as if bound to their planned nodes: what an assumed gang holds."""
    return [
        {**p, "spec": {**p["spec"], "nodeName": p["metadata"]["annotations"][PLANNED_NODE_ANNOTATION]}} for p in pods
    ]
