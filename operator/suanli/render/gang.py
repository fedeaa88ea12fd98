"""Manifests for one gang: the headless rendezvous Service, the worker pods, the Ascend rank table.

Names are deterministic (job, restart generation, replica index), so a controller that crashes between two
creates and runs again gets AlreadyExists instead of a duplicate pod.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.aitrainingjob import AITrainingJob
from ..api.base import API_VERSION
from ..inventory.models import VENDOR_BY_NAME
from .security import secure_pod

JOB_LABEL = "suanli.io/job"
REPLICA_LABEL = "suanli.io/replica"
GENERATION_LABEL = "suanli.io/generation"
VENDOR_LABEL = "suanli.io/vendor"
SPEC_HASH_ANNOTATION = "suanli.io/spec-hash"
PLANNED_NODE_ANNOTATION = "suanli.io/planned-node"
LINK_DOMAIN_ANNOTATION = "suanli.io/link-domain"
TRAINER_CONTAINER = "trainer"

# Where MindCluster's ascend-operator mounts the rank table, so images built for it work unchanged.
RANK_TABLE_DIR = "/user/serverid/devindex/config"
RANK_TABLE_KEY = "hccl.json"
# The Ascend device plugin records the cards it gave a pod, with their RoCE IPs, in this annotation.
ASCEND_DEVICE_ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-910-configuration"


@dataclass(frozen=True)
class GangSlot:
    """Where one replica goes: the planner's answer for it, in the terms rendering needs."""

    replica: int
    node: str
    resource_name: str
    """The extended resource the chosen node advertises (huawei.com/Ascend910, nvidia.com/gpu...)."""
    vendor: str
    image: str
    link_domain: str | None = None
    """The in-node link domains the cards come from, as the pod's ``suanli.io/link-domain`` (``0+1``)."""
    first_device: int = 0
    """Physical index of the replica's first card, for the rank table when no device plugin says."""


def _name(job: AITrainingJob) -> str:
    return str(job.metadata["name"])


def _namespace(job: AITrainingJob) -> str:
    return str(job.metadata.get("namespace", "default"))


def owner_reference(job: AITrainingJob) -> dict[str, Any]:
    """Makes the job own what it creates, so deleting it cascades through the garbage collector."""
    return {
        "apiVersion": API_VERSION,
        "kind": "AITrainingJob",
        "name": _name(job),
        "uid": job.metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_name(job_name: str, generation: int, replica: int) -> str:
    """`<job>-g<generation>-<replica>`: a restart gets fresh names, so old pods need not be gone first."""
    return f"{job_name}-g{generation}-{replica}"


def spec_hash(job: AITrainingJob) -> str:
    """A digest of everything in the spec that shapes the pods; a running gang records the one it got."""
    wire = job.spec.model_dump(mode="json", by_alias=True, exclude={"ttl_seconds_after_finished", "priority", "queue"})
    return hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()[:16]


def build_service(job: AITrainingJob) -> dict[str, Any]:
    """Headless Service giving each replica a stable DNS name `<job>-<i>.<job>` for rendezvous."""
    name = _name(job)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": _namespace(job),
            "labels": {JOB_LABEL: name},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: name},
            # Ranks must resolve each other before any of them is Ready: readiness waits on rendezvous.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": job.spec.rendezvous_port, "protocol": "TCP"}],
        },
    }


def _rendezvous_env(job: AITrainingJob, replica: int, world: int) -> list[dict[str, str]]:
    name, ns = _name(job), _namespace(job)
    procs = job.spec.accelerators_per_replica
    master = f"{name}-0.{name}.{ns}.svc"
    port = str(job.spec.rendezvous_port)
    values = {
        # torchrun reads PET_*; scripts launched without it read the classic variables. One process per
        # accelerator: RANK is the first global rank of this replica and LOCAL_RANK its first local one.
        "MASTER_ADDR": master,
        "MASTER_PORT": port,
        "WORLD_SIZE": str(world * procs),
        "RANK": str(replica * procs),
        "LOCAL_RANK": "0",
        "NODE_RANK": str(replica),
        "PET_NNODES": str(world),
        "PET_NPROC_PER_NODE": str(procs),
        "PET_NODE_RANK": str(replica),
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": port,
    }
    return [{"name": k, "value": v} for k, v in values.items()]


def _vendor_env(job: AITrainingJob, slot: GangSlot, world: int, rank_table: bool) -> list[dict[str, str]]:
    profile = VENDOR_BY_NAME[slot.vendor]
    local = ",".join(str(i) for i in range(job.spec.accelerators_per_replica))
    values = {
        "SUANLI_ACCELERATOR_VENDOR": slot.vendor,
        "SUANLI_COLLECTIVE_BACKEND": profile.collective,
        "SUANLI_TORCH_BACKEND": profile.torch_backend,
        **{var: local for var in profile.visible_devices_env},
        **profile.pod_env,
    }
    if profile.needs_rank_table and rank_table:
        values["RANK_TABLE_FILE"] = f"{RANK_TABLE_DIR}/{RANK_TABLE_KEY}"
        values["RANK_SIZE"] = str(world * job.spec.accelerators_per_replica)
        values["SERVER_ID"] = str(slot.replica)
    return [{"name": k, "value": v} for k, v in values.items()]


def build_pod(
    job: AITrainingJob,
    slot: GangSlot,
    *,
    world: int,
    generation: int,
    scheduler_name: str,
    tolerate: Iterable[str] = (),
    digest: str | None = None,
    rank_table: bool = True,
) -> dict[str, Any]:
    """One worker pod, unbound: the controller binds it to `slot.node` through the Binding subresource.

    `digest` is `spec_hash(job)` when the caller already has it (it is the same for the whole gang).
    `rank_table=False` (a gang that mixes Ascend with other vendors: no HCCL table) leaves the table's
    volume and variables out of an Ascend replica.
    """
    name = _name(job)
    tpl = job.spec.template
    profile = VENDOR_BY_NAME[slot.vendor]
    count = str(job.spec.accelerators_per_replica)
    # Quantities as strings: a YAML `cpu: 16` arrives as an int, and a Pod's resources are strings.
    requests = {**{k: str(v) for k, v in tpl.resources.requests.items()}, slot.resource_name: count}
    limits = {**{k: str(v) for k, v in tpl.resources.limits.items()}, slot.resource_name: count}
    user_env = [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in tpl.env]
    ours = _rendezvous_env(job, slot.replica, world) + _vendor_env(job, slot, world, rank_table)
    user_names = {e["name"] for e in user_env}
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": slot.image,
        # The user's env wins over ours: a user who sets MASTER_PORT knows why.
        "env": [e for e in ours if e["name"] not in user_names] + user_env,
        "resources": {"requests": requests, "limits": limits},
        "ports": [{"name": "rendezvous", "containerPort": job.spec.rendezvous_port}],
        "volumeMounts": [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in tpl.volume_mounts],
    }
    if tpl.command:
        container["command"] = list(tpl.command)
    if tpl.args:
        container["args"] = list(tpl.args)
    if tpl.working_dir:
        container["workingDir"] = tpl.working_dir
    volumes = [v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in tpl.volumes]
    if profile.needs_rank_table and rank_table:
        volumes.append({"name": "ascend-rank-table", "configMap": {"name": rank_table_name(name)}})
        container["volumeMounts"].append({"name": "ascend-rank-table", "mountPath": RANK_TABLE_DIR, "readOnly": True})
    tolerations = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tpl.tolerations]
    # Exactly the taints the inventory treats as ours (InventorySettings.tolerated_taints), any effect:
    # the planner put the replica on such a node, so the pod must be allowed to stay there.
    tolerations += [{"key": key, "operator": "Exists"} for key in sorted(tolerate)]
    annotations = {
        **tpl.annotations,
        SPEC_HASH_ANNOTATION: digest or spec_hash(job),
        PLANNED_NODE_ANNOTATION: slot.node,
    }
    if slot.link_domain is not None:
        annotations[LINK_DOMAIN_ANNOTATION] = slot.link_domain
    spec: dict[str, Any] = {
        "schedulerName": scheduler_name,
        # The gang restarts as a whole (a collective cannot lose a rank), so the kubelet must not restart
        # one container behind the operator's back.
        "restartPolicy": "Never",
        "hostname": f"{name}-{slot.replica}",
        "subdomain": name,
        "containers": [container],
        "volumes": volumes,
        "tolerations": tolerations,
    }
    if tpl.service_account_name:
        spec["serviceAccountName"] = tpl.service_account_name
    if tpl.node_selector:
        spec["nodeSelector"] = dict(tpl.node_selector)
    secure_pod(spec, tpl)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, generation, slot.replica),
            "namespace": _namespace(job),
            "labels": {
                **tpl.labels,
                JOB_LABEL: name,
                REPLICA_LABEL: str(slot.replica),
                GENERATION_LABEL: str(generation),
                VENDOR_LABEL: slot.vendor,
            },
            "annotations": annotations,
            "ownerReferences": [owner_reference(job)],
        },
        "spec": spec,
    }


def rank_table_name(job_name: str) -> str:
    """MindCluster's name for a job's rank-table ConfigMap."""
    return f"rings-config-{job_name}"


def _devices(count: int, first_device: int, annotation: str | None) -> list[dict[str, str]]:
    """The cards of one replica: from the device plugin's record when it wrote one, else by ring."""
    if annotation:
        try:
            record = json.loads(annotation)
            return [
                {"device_id": str(d["device_id"]), "device_ip": str(d.get("device_ip", ""))}
                for d in record.get("devices", [])
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a malformed record must not stop the gang; fall back to ring-based ids
    return [{"device_id": str(first_device + i)} for i in range(count)]


def build_rank_table_config_map(
    job: AITrainingJob, slots: Sequence[GangSlot], pods: Mapping[int, Mapping[str, Any]]
) -> dict[str, Any]:
    """The Ascend rank table (hccl.json, version 1.0) as MindCluster writes it.

    `pods` maps replica → its Pod (dict) when known. The table says "completed" once every replica's pod has
    an IP; until then "initializing", which HCCL-based launchers wait on.
    """
    count = job.spec.accelerators_per_replica
    servers = []
    rank = 0
    complete = True
    for slot in sorted(slots, key=lambda s: s.replica):
        pod = pods.get(slot.replica) or {}
        status = pod.get("status") or {}
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        devices = _devices(count, slot.first_device, annotations.get(ASCEND_DEVICE_ANNOTATION))
        for device in devices:
            device["rank_id"] = str(rank)
            rank += 1
        pod_ip = status.get("podIP")
        complete = complete and bool(pod_ip)
        servers.append(
            {
                "server_id": status.get("hostIP") or slot.node,
                "container_ip": pod_ip or "",
                "device": devices,
            }
        )
    table = {
        "status": "completed" if complete else "initializing",
        "version": "1.0",
        "server_count": str(len(servers)),
        "server_list": servers,
    }
    name = _name(job)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": rank_table_name(name),
            "namespace": _namespace(job),
            "labels": {JOB_LABEL: name},
            "ownerReferences": [owner_reference(job)],
        },
        "data": {RANK_TABLE_KEY: json.dumps(table, indent=2)},
    }
