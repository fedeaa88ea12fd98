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

from ..api.aitrainingjob import AITrainingJob, Framework
from ..api.base import API_VERSION
from ..inventory.models import VENDOR_BY_NAME
from .launch import (
    DEEPSPEED_HOSTFILE_ANNOTATION,
    DEEPSPEED_HOSTFILE_DIR,
    DEEPSPEED_HOSTFILE_VOLUME,
    deepspeed_hostfile,
    deepspeed_hostfile_volume,
    launch_env,
)
from .ranktable import (
    RANK_TABLE_DIR,
    RANK_TABLE_VOLUME,
    RankTableSlot,
    rank_table_config_map,
    rank_table_init_container,
    rank_table_schema,
    rank_table_volumes,
)
from .ranktable import rank_table_name as rank_table_name  # the engine imports it from here
from .security import secure_pod

JOB_LABEL = "suanli.io/job"
REPLICA_LABEL = "suanli.io/replica"
GENERATION_LABEL = "suanli.io/generation"
VENDOR_LABEL = "suanli.io/vendor"
SPEC_HASH_ANNOTATION = "suanli.io/spec-hash"
PLANNED_NODE_ANNOTATION = "suanli.io/planned-node"
PLAN_ANNOTATION = "suanli.io/plan"
"""On the job's Service: the plan of the gang being bound (controller/plans.py)."""
PLAN_VERSION_ANNOTATION = "suanli.io/plan-version"
"""On each pod: the resourceVersion of the Service whose plan made it, so a plan edited since is not resumed."""
LINK_DOMAIN_ANNOTATION = "suanli.io/link-domain"
TRAINER_CONTAINER = "trainer"


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
    """The planner's idea of the replica's first card (informational only: the kubelet and the device plugin pick
    the physical cards, and the rank table takes device ids only from the plugin's annotation)."""
    rank_table_schema: str | None = None
    """Ascend only: the rank-table schema of the slot's node, ``ranktable.rank_table_schema(node.resource,
    node.labels)``; None derives it from ``resource_name`` alone (2.0 for huawei.com/npu, else 1.0), which
    misses super pods (1.2)."""
    node_taint_keys: tuple[str, ...] = ()
    """Keys of the taints the operator tolerates by itself that the node carries (``AcceleratorNode.
    tolerated_taint_keys``): the pod tolerates them whatever vendor they name (:func:`operator_tolerations`)."""

    def rank_table_slot(self) -> RankTableSlot:
        schema = self.rank_table_schema or rank_table_schema(self.resource_name, {})
        return RankTableSlot(self.replica, self.node, self.resource_name, schema)


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


_HASHES: dict[int, tuple[object, str]] = {}
"""Digests by spec object (kept alive here, so its id cannot be reused): specs are never changed in place."""


def spec_hash(job: AITrainingJob) -> str:
    """A digest of everything in the spec that shapes the pods; a running gang records the one it got.

    Fields left at their defaults are not part of it, so a release that adds a field does not make every
    running gang look changed. Remembered per spec object, since a running gang's hash is compared on each
    of its pods' events and the engine parses each job version once."""
    found = _HASHES.get(id(job.spec))
    if found is not None and found[0] is job.spec:
        return found[1]
    wire = job.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True,
                               exclude={"ttl_seconds_after_finished", "priority", "queue"})
    digest = hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()[:16]
    if len(_HASHES) >= 4096:
        _HASHES.clear()
    _HASHES[id(job.spec)] = (job.spec, digest)
    return digest


def build_service(job: AITrainingJob, plan: str | None = None) -> dict[str, Any]:
    """Headless Service giving each replica a stable DNS name `<job>-<i>.<job>` for rendezvous; `plan` is the
    encoded plan of the gang being bound (controller/plans.py)."""
    name = _name(job)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": _namespace(job),
            "labels": {JOB_LABEL: name},
            **({"annotations": {PLAN_ANNOTATION: plan}} if plan is not None else {}),
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
    with_table = profile.needs_rank_table and rank_table
    ours = launch_env(job, slot.replica, slot.vendor, world=world, generation=generation, rank_table=with_table)
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
    init_containers = []
    if with_table:
        # The trainer reads a regular-file copy made once the table is complete (ranktable module docstring).
        volumes += rank_table_volumes(name)
        init_containers.append(rank_table_init_container(slot.image, generation))
        container["volumeMounts"].append({"name": RANK_TABLE_VOLUME, "mountPath": RANK_TABLE_DIR, "readOnly": True})
    hostfile = None
    taken = {m["mountPath"] for m in container["volumeMounts"]}
    if job.spec.framework == Framework.DEEPSPEED and DEEPSPEED_HOSTFILE_DIR not in taken:
        hostfile = deepspeed_hostfile(job, world)
        volumes.append(deepspeed_hostfile_volume())
        container["volumeMounts"].append(
            {"name": DEEPSPEED_HOSTFILE_VOLUME, "mountPath": DEEPSPEED_HOSTFILE_DIR, "readOnly": True}
        )
    tolerations = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tpl.tolerations]
    tolerations += operator_tolerations(tolerate, slot)
    annotations = {
        **tpl.annotations,
        SPEC_HASH_ANNOTATION: digest or spec_hash(job),
        PLANNED_NODE_ANNOTATION: slot.node,
    }
    if slot.link_domain is not None:
        annotations[LINK_DOMAIN_ANNOTATION] = slot.link_domain
    if hostfile is not None:
        annotations[DEEPSPEED_HOSTFILE_ANNOTATION] = hostfile
    spec: dict[str, Any] = {
        "schedulerName": scheduler_name,
        # The gang restarts as a whole (a collective cannot lose a rank), so the kubelet must not restart
        # one container behind the operator's back.
        "restartPolicy": "Never",
        "hostname": f"{name}-{slot.replica}",
        "subdomain": name,
        "containers": [container],
        **({"initContainers": init_containers} if init_containers else {}),
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


def _domain(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def operator_tolerations(tolerate: Iterable[str], slot: GangSlot) -> list[dict[str, Any]]:
    """Tolerations, any effect, for the taints the operator tolerates by itself (`tolerate`:
    InventorySettings.tolerated_taints) that this replica may meet: every one its node carries, and every one
    not in another vendor's resource domain — its own vendor's (``huawei.com/npu`` for an Ascend pod) and the
    admin's own keys (``dedicated``), so that such a taint added later, NoExecute included, does not evict it.

    Left out: another vendor's accelerator taints (``nvidia.com/gpu`` on an Ascend pod) that its node does not
    carry — as Kubernetes' ExtendedResourceToleration tolerates only the resources a pod requests. Each
    toleration is an element of a keyed list the API server, the kubelet and every pod watcher handle in each
    write of the pod (bench/pod_shape.py measures what a pod's fields cost), and three or four of the five
    default keys could never apply to a given pod."""
    own = {_domain(r) for r in VENDOR_BY_NAME[slot.vendor].resources} | {_domain(slot.resource_name)}
    foreign = {_domain(r) for v in VENDOR_BY_NAME.values() for r in v.resources} - own
    carried = set(slot.node_taint_keys)
    return [
        {"key": key, "operator": "Exists"}
        for key in sorted(set(tolerate))
        if key in carried or _domain(key) not in foreign
    ]


def launch_config_map_name(job_name: str) -> str:
    """The ConfigMap holding the launch variables a job's replicas share (their envFrom)."""
    return f"{job_name}-launch"


def share_launch_env(job: AITrainingJob, pods: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Move the launch variables every replica of the gang has alike from its pods' env to one ConfigMap,
    which each trainer container reads first (envFrom); returns that ConfigMap's data.

    Why: each env entry is an element of a keyed list that the API server tracks field by field in every
    write of the pod (its create, its binding, the kubelet's status updates) — the 22-28 launch variables
    cost it 1-2 ms of CPU per pod, and sharing them saves 0.4-0.5 ms and a third of the pod's watch bytes
    (bench/pod_shape.py). What differs per replica
    (RANK, NODE_RANK, PET_NODE_RANK, SUANLI_NODE_RANK, SUANLI_FIRST_RANK; for Ascend SERVER_ID, RANK_ID; a
    mixed gang's per-vendor backend; MindSpore's MS_SCHED_HOST) stays on the pod. The user's own env is never
    moved, and it still wins: a container's env overrides what its envFrom gives.
    """
    if not pods:
        return {}
    user = {e.name for e in job.spec.template.env}
    trainers = [next(c for c in p["spec"]["containers"] if c["name"] == TRAINER_CONTAINER) for p in pods]
    plain = [{e["name"]: e["value"] for e in t.get("env") or [] if "value" in e and e["name"] not in user}
             for t in trainers]
    shared = dict(plain[0])
    for values in plain[1:]:
        shared = {k: v for k, v in shared.items() if values.get(k) == v}
    if not shared:
        return {}
    source = {"configMapRef": {"name": launch_config_map_name(_name(job))}}
    for trainer in trainers:
        trainer["env"] = [e for e in trainer.get("env") or [] if e["name"] not in shared]
        trainer["envFrom"] = [source, *(trainer.get("envFrom") or [])]
    return shared


def build_launch_config_map(job: AITrainingJob, data: Mapping[str, str]) -> dict[str, Any]:
    """The ConfigMap of `share_launch_env`, owned by the job (collected with it)."""
    name = _name(job)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": launch_config_map_name(name),
            "namespace": _namespace(job),
            "labels": {JOB_LABEL: name},
            "ownerReferences": [owner_reference(job)],
        },
        "data": dict(data),
    }


def build_rank_table_config_map(
    job: AITrainingJob, slots: Sequence[GangSlot], pods: Mapping[int, Mapping[str, Any]]
) -> dict[str, Any]:
    """The gang's rank-table ConfigMap for generation ``job.status.generation`` (see :mod:`.ranktable`).

    `pods` maps replica -> the current gang's Pod (dict) as the API returns it, annotations and status included;
    `{}` gives the initializing table a new generation starts from.
    """
    name = _name(job)
    return rank_table_config_map(
        job, [s.rank_table_slot() for s in slots], pods, owner_reference(job), {JOB_LABEL: name}
    )
