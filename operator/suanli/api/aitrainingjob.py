"""AITrainingJob: one distributed training run, gang-scheduled onto whichever accelerator fits first.

A job names its acceptable accelerators in preference order (``candidates``), each with the image
built for that vendor's stack, so the same job can run on Ascend NPUs, NVIDIA GPUs or Hygon DCUs
depending on what is free — the thing no peer scheduler models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from .base import (
    ApiModel,
    Condition,
    DnsLabel,
    LabelValue,
    Message,
    ModelName,
    NodeName,
    ResourceQuantity,
    ShortText,
    Timestamp,
    Vendor,
    rule,
)
from .errors import parse_object

KIND = "AITrainingJob"
PLURAL = "aitrainingjobs"

MAX_REPLICAS = 10000
MAX_ACCELERATORS_PER_REPLICA = 64
MAX_CANDIDATES = 16
MAX_RESTARTS = 1000
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000
DEFAULT_RENDEZVOUS_PORT = 29500
MAX_NAME_LENGTH = 52
"""A job's name becomes its Service's name and, as `<name>-<replica>`, its pods' hostnames (DNS-1035
labels of at most 63 characters); 52 leaves room for `-g<generation>-<replica>` in pod names too."""
_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_RULE = {
    "rule": f"self.metadata.name.matches('{_NAME_PATTERN}') && size(self.metadata.name) <= {MAX_NAME_LENGTH}",
    "message": (
        f"metadata.name must be a DNS-1035 label of at most {MAX_NAME_LENGTH} characters (lower-case letters, "
        "digits and '-', starting with a letter, no dots): it names the job's Service and its pods' "
        "hostnames; rename the job"
    ),
    "reason": "FieldValueInvalid",
}


def name_problem(name: str) -> str | None:
    """The Python twin of NAME_RULE: None when `name` is usable, else what is wrong and the fix."""
    if len(name) <= MAX_NAME_LENGTH and re.match(_NAME_PATTERN, name):
        return None
    return f"metadata.name {name!r} is not usable: " + NAME_RULE["message"]
ASCEND_RANK_TABLE_DIR = "/user/serverid/devindex/config"
"""Where the operator delivers the Ascend rank table (hccl.json): MindCluster's path, so its scripts find it."""

# Ascend servers wire their NPUs in HCCS rings, so only some card counts per replica get full
# bandwidth: 910/910B in 1, 2, 4 or all 8 cards of a server; 910C (dual-die) in pairs up to the 16
# dies of a server. A replica always lives on one node, so larger counts cannot exist.
ASCEND910_CARD_COUNTS = (1, 2, 4, 8)
ASCEND910C_CARD_COUNTS = (2, 4, 6, 8, 10, 12, 14, 16)


class Framework(StrEnum):
    """Training framework; decides the launch environment the pods get (docs/frameworks.md)."""

    PYTORCH = "pytorch"
    """torchrun/torch.distributed: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK (node rank), PET_*."""
    MINDSPORE = "mindspore"
    """The torch variables plus MindSpore's (MS_* for dynamic networking, or a rank table)."""
    DEEPSPEED = "deepspeed"
    """The torch variables plus a DeepSpeed hostfile at /job/hostfile for deepspeed --no_ssh."""
    OTHER = "other"
    """The torch variables only."""


class MindSporeStartup(StrEnum):
    """How MindSpore builds its communication group (MindSpore's two Ascend start-up methods)."""

    DYNAMIC_NETWORKING = "DynamicNetworking"
    """msrun or MS_ROLE processes find each other through a scheduler process (MS_SCHED_HOST/PORT) in replica 0."""
    RANK_TABLE = "RankTable"
    """HCCL reads the rank table (RANK_TABLE_FILE); the launch script sets RANK_ID and DEVICE_ID per process.
    Ascend only."""


class TopologyLevel(StrEnum):
    """Network level a gang must fit in, narrowest first."""

    NODE = "node"
    RACK = "rack"
    ZONE = "zone"
    REGION = "region"

    @property
    def rank(self) -> int:
        """0 for node up to 3 for region: a higher rank is a wider (slower) domain."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {level: i for i, level in enumerate(TopologyLevel)}
_CEL_LEVEL_RANK = "{" + ", ".join(f"'{level.value}': {i}" for level, i in _LEVEL_RANK.items()) + "}"


class RestartEvent(StrEnum):
    """An event that may restart the whole gang (a collective cannot survive a lost rank)."""

    POD_FAILED = "PodFailed"
    """A training container exited non-zero."""
    NODE_LOST = "NodeLost"
    """A node running a replica was deleted, or stayed not Ready past the operator's grace
    (SUANLI_NODE_LOST_GRACE_SECONDS)."""
    ACCELERATOR_UNHEALTHY = "AcceleratorUnhealthy"
    """The node agent marked a device of the gang unhealthy."""
    PREEMPTED = "Preempted"
    """A higher-priority job took the gang's accelerators (counted in status.preemptions, not against
    maxRestarts)."""
    REPLICA_LOST = "ReplicaLost"
    """A replica's pod disappeared or is being deleted by someone else: `kubectl delete`, an eviction, a
    node drain, or another scheduler's preemption."""


class JobPhase(StrEnum):
    """Lifecycle phase of a job."""

    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


class JobConditionType(StrEnum):
    """Condition types the operator sets on a job."""

    PLACED = "Placed"
    READY = "Ready"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


Image = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s]+$")]
_ACCELERATOR_PREFIXES = ("nvidia.com/", "huawei.com/", "hygon.com/")


class Candidate(ApiModel):
    """One acceptable accelerator and the image built for its software stack."""

    vendor: Vendor
    """Accelerator vendor: nvidia, huawei (Ascend NPUs) or hygon (DCUs)."""
    model: ModelName | None = None
    """Accelerator model, e.g. Ascend910B, Ascend910C, H100, A800, K100. The inventory normalises
    both this name and the nodes' (ascend910b, 910B3 and Ascend910B all mean Ascend910B; K100 means
    DCU-K100) and a name also selects its suffixed variants (DCU-K100 selects DCU-K100-AI). Omit to
    accept any model of the vendor."""
    min_memory_gib: Annotated[int, Field(ge=1, le=4096)] | None = Field(default=None, alias="minMemoryGiB")
    """Smallest acceptable memory per device, in GiB (1024^3 bytes)."""
    image: Image
    """Container image built for this vendor's stack (CUDA, CANN or DTK), e.g.
    registry.example.com/train/llama:ascend-cann8."""


class EnvVar(ApiModel):
    """An environment variable of the training container."""

    name: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")]
    """Variable name."""
    value: Annotated[str, Field(max_length=32768)] | None = None
    """Literal value."""
    value_from: (
        Annotated[dict[str, Any], Field(json_schema_extra={"x-kubernetes-map-type": "atomic"})] | None
    ) = None
    """A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef), passed
    to the pod unchanged."""

    @rule(
        "!(has(self.value) && has(self.valueFrom))",
        "set either value or valueFrom, not both",
        field_path=".valueFrom",
        reason="FieldValueForbidden",
    )
    def _one_source(self) -> bool:
        return not (self.value is not None and self.value_from is not None)


class Resources(ApiModel):
    """CPU, memory and other non-accelerator resources of each replica's container.

    Accelerators are not listed here: the operator requests them from the chosen candidate and
    ``acceleratorsPerReplica``.
    """

    requests: Annotated[dict[str, ResourceQuantity], Field(max_length=16)] = Field(default_factory=dict)
    """Resources the scheduler reserves, e.g. {cpu: 32, memory: 256Gi}."""
    limits: Annotated[dict[str, ResourceQuantity], Field(max_length=16)] = Field(default_factory=dict)
    """Hard caps, e.g. {memory: 512Gi}."""

    @rule(
        " && ".join(
            f"(!has(self.{m}) || self.{m}.all(k, "
            + " && ".join(f"!k.startsWith('{p}')" for p in _ACCELERATOR_PREFIXES)
            + "))"
            for m in ("requests", "limits")
        ),
        "accelerator resources are set by the operator from candidates and acceleratorsPerReplica: "
        "remove nvidia.com/*, huawei.com/* and hygon.com/* from requests and limits",
        reason="FieldValueForbidden",
    )
    def _no_accelerators(self) -> bool:
        return not any(k.startswith(_ACCELERATOR_PREFIXES) for k in (*self.requests, *self.limits))


class Volume(ApiModel, extra="allow"):
    """A Kubernetes pod volume: ``name`` plus one volume source (persistentVolumeClaim, configMap,
    emptyDir, hostPath, ...), passed to the pod unchanged."""

    name: DnsLabel
    """Volume name, referenced by volumeMounts."""


class VolumeMount(ApiModel):
    """Where a volume appears in the training container."""

    name: DnsLabel
    """Name of a volume in template.volumes."""
    mount_path: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]
    """Absolute path in the container."""
    sub_path: Annotated[str, Field(max_length=4096)] | None = None
    """Sub-path inside the volume to mount instead of its root."""
    read_only: bool = False
    """Mount read-only."""


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A Kubernetes toleration, for accelerator nodes kept tainted for training."""

    key: Annotated[str, Field(max_length=317)] | None = None
    """Taint key; empty with operator Exists tolerates everything."""
    operator: TolerationOperator = TolerationOperator.EQUAL
    """Exists or Equal."""
    value: LabelValue | None = None
    """Taint value, for operator Equal."""
    effect: TaintEffect | None = None
    """Taint effect to tolerate; empty means all effects."""
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None
    """For NoExecute: how long the pod stays bound after the taint appears."""


# Passed to the pod as given (the Pod API validates it); what a user may set is the admission policy's call.
SecurityContextDict = Annotated[dict[str, Any], Field(json_schema_extra={"x-kubernetes-map-type": "atomic"})]


class ReplicaTemplate(ApiModel):
    """The container every replica runs; the image comes from the chosen candidate."""

    command: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=64)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Entrypoint; empty keeps the image's."""
    args: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=256)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Arguments to the entrypoint."""
    working_dir: Annotated[str, Field(max_length=4096)] | None = None
    """Working directory; empty keeps the image's."""
    env: Annotated[list[EnvVar], Field(max_length=128)] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Environment variables, added to the launch variables the operator sets (MASTER_ADDR, WORLD_SIZE,
    RANK, ...; docs/frameworks.md); a variable set here replaces the operator's of the same name."""
    resources: Resources = Field(default_factory=Resources)
    """CPU and memory per replica."""
    volumes: Annotated[list[Volume], Field(max_length=64)] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Pod volumes (datasets, checkpoints, shared memory)."""
    volume_mounts: Annotated[list[VolumeMount], Field(max_length=64)] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["mountPath"]},
    )
    """Where the volumes appear in the container."""
    node_selector: Annotated[dict[str, LabelValue], Field(max_length=32)] = Field(default_factory=dict)
    """Extra node labels every replica's node must carry (the operator adds the accelerator's)."""
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Taints the replicas tolerate."""
    labels: Annotated[dict[str, LabelValue], Field(max_length=32)] = Field(default_factory=dict)
    """Labels added to every replica pod."""
    annotations: Annotated[dict[str, Annotated[str, Field(max_length=65536)]], Field(max_length=32)] = Field(
        default_factory=dict
    )
    """Annotations added to every replica pod."""
    service_account_name: DnsLabel | None = None
    """Service account of the replica pods. Without the right to create pods in the namespace, only
    ``default`` or an account you may ``use`` (docs/security.md)."""
    security_context: SecurityContextDict | None = None
    """The trainer container's securityContext; each key set here replaces the same key of Suanli's
    restricted default (allowPrivilegeEscalation: false, capabilities: {drop: [ALL]})."""
    pod_security_context: SecurityContextDict | None = None
    """The pods' securityContext; each key set here replaces the same key of Suanli's restricted default
    (runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}). Images that run as root need
    runAsNonRoot: false."""

    @rule(
        "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
        "self.volumes.exists(v, v.name == m.name))",
        "every volumeMounts[].name must name a volume in template.volumes: add the volume or fix the name",
        field_path=".volumeMounts",
    )
    def _mounts_have_volumes(self) -> bool:
        names = {v.name for v in self.volumes}
        return all(m.name in names for m in self.volume_mounts)

    @rule(
        f"!has(self.volumeMounts) || self.volumeMounts.all(m, m.mountPath != '{ASCEND_RANK_TABLE_DIR}' && "
        f"m.mountPath != '{ASCEND_RANK_TABLE_DIR}/')",
        f"volumeMounts must not use {ASCEND_RANK_TABLE_DIR}: the operator delivers the Ascend rank table there "
        "(a job migrated from MindCluster drops its rings-config volume; see docs/frameworks.md)",
        field_path=".volumeMounts",
    )
    def _rank_table_dir_free(self) -> bool:
        return all(m.mount_path.rstrip("/") != ASCEND_RANK_TABLE_DIR for m in self.volume_mounts)


class Topology(ApiModel):
    """How close together the gang's replicas must be: each level is a network domain, and a narrower
    domain means faster collectives."""

    required: TopologyLevel | None = None
    """The gang must fit inside one domain of this level or it stays pending: node (all replicas on
    one node), rack, zone or region. Omit for no constraint."""
    preferred: TopologyLevel | None = None
    """The level the gang should fit in; status.message says whether the placement met it. It does not
    change the choice: the planner always takes the narrowest domain that holds the gang (up to
    ``required``). Must be no wider than ``required``."""

    @rule(
        f"!has(self.required) || !has(self.preferred) || {_CEL_LEVEL_RANK}[self.preferred] <= "
        f"{_CEL_LEVEL_RANK}[self.required]",
        "preferred must be no wider than required (node < rack < zone < region): "
        "narrow preferred or widen required",
        field_path=".preferred",
    )
    def _preferred_within_required(self) -> bool:
        return self.required is None or self.preferred is None or self.preferred.rank <= self.required.rank


def _all_restart_events() -> list[RestartEvent]:
    return list(RestartEvent)


class FailurePolicy(ApiModel):
    """What to do when a replica fails: restart the whole gang (collectives cannot lose a rank), up
    to a limit."""

    max_restarts: Annotated[int, Field(ge=0, le=MAX_RESTARTS)] = 3
    """Gang restarts allowed before the job fails; 3 rides out the odd flaky node without looping
    forever on a broken job."""
    restart_on: Annotated[list[RestartEvent], Field(max_length=len(RestartEvent))] = Field(
        default_factory=_all_restart_events,
        # Stated in the schema too, so the API server stores (and kubectl shows) the policy in force.
        json_schema_extra={"x-kubernetes-list-type": "set", "default": [e.value for e in RestartEvent]},
    )
    """Events that restart the gang; any other failure fails the job at once. Default: all of
    PodFailed, NodeLost, AcceleratorUnhealthy, Preempted and ReplicaLost. An empty list never restarts."""


class AITrainingJobSpec(ApiModel):
    """Desired state of a distributed training job."""

    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)]
    """Number of replicas (pods, one per rank group); each runs on a single node."""
    min_replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] | None = None
    """Gang size: the job starts only when this many replicas can be placed at once. Defaults to
    replicas (all or nothing)."""
    accelerators_per_replica: Annotated[int, Field(ge=1, le=MAX_ACCELERATORS_PER_REPLICA)]
    """Accelerator devices each replica gets, all on its node. Ascend910/910B: 1, 2, 4 or 8;
    Ascend910C: an even number up to 16."""
    candidates: Annotated[list[Candidate], Field(min_length=1, max_length=MAX_CANDIDATES)] = Field(
        json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Acceptable accelerators in preference order; the first that can hold the whole gang wins."""
    allow_mixed_vendors: bool = False
    """Let one gang span candidates of different vendors (each replica runs its candidate's image).
    Off by default because mixed collectives (NCCL with HCCL) need a framework that bridges them."""
    template: ReplicaTemplate = Field(default_factory=ReplicaTemplate)
    """The container each replica runs."""
    framework: Framework = Framework.PYTORCH
    """Training framework: pytorch, mindspore, deepspeed or other; decides the launch environment of the pods
    (every framework gets MASTER_ADDR, MASTER_PORT, WORLD_SIZE = processes, RANK = the pod's node rank as in
    MindCluster and Kubeflow, PET_* for torchrun and unambiguous SUANLI_* variables; see docs/frameworks.md)."""
    mindspore_startup: MindSporeStartup = MindSporeStartup.DYNAMIC_NETWORKING
    """framework mindspore only: DynamicNetworking (MS_SCHED_HOST, MS_SCHED_PORT, MS_WORKER_NUM,
    MS_LOCAL_WORKER, MS_NODE_RANK, MS_ROLE) or RankTable (RANK_TABLE_FILE, RANK_SIZE, DEVICE_NUM, SERVER_ID;
    Ascend candidates only)."""
    topology: Topology = Field(default_factory=Topology)
    """Network locality the gang requires and prefers."""
    # default {} lets the API server fill in maxRestarts and restartOn, so `kubectl get -o yaml`
    # shows the policy in force.
    failure_policy: FailurePolicy = Field(default_factory=FailurePolicy, json_schema_extra={"default": {}})
    """When and how often to restart the gang."""
    queue: DnsLabel | None = None
    """A label for grouping jobs (kubectl get --field-selector spec.queue=...). No queue objects exist
    yet: every job waits in one queue, ordered by priority, then age."""
    priority: Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)] = 0
    """Order in the queue, higher first (-1000..1000); a job that cannot fit may preempt running gangs
    of strictly lower priority. At most the namespace's ceiling, which cluster admins set (annotation
    suanli.io/max-priority, chart default 0; docs/security.md)."""
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    """Delete the job this many seconds after it succeeds or fails; omit to keep it."""
    rendezvous_port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_RENDEZVOUS_PORT
    """Port of rank 0's rendezvous endpoint (MASTER_PORT); 29500 is torchrun's default."""

    @property
    def gang_size(self) -> int:
        """Replicas that must be placed together before any starts."""
        return self.replicas if self.min_replicas is None else self.min_replicas

    @rule(
        "!has(self.mindsporeStartup) || self.mindsporeStartup == 'DynamicNetworking' || "
        "(has(self.framework) && self.framework == 'mindspore' && self.candidates.all(c, c.vendor == 'huawei'))",
        "mindsporeStartup RankTable needs framework mindspore and only huawei candidates (HCCL reads the rank "
        "table): use DynamicNetworking or fix framework and candidates",
        field_path=".mindsporeStartup",
    )
    def _rank_table_startup(self) -> bool:
        return self.mindspore_startup == MindSporeStartup.DYNAMIC_NETWORKING or (
            self.framework == Framework.MINDSPORE and all(c.vendor == Vendor.HUAWEI for c in self.candidates)
        )

    @rule(
        "!has(self.minReplicas) || self.minReplicas <= self.replicas",
        "minReplicas (the gang size) must not exceed replicas: lower minReplicas or raise replicas",
        field_path=".minReplicas",
    )
    def _gang_within_replicas(self) -> bool:
        return self.min_replicas is None or self.min_replicas <= self.replicas

    @rule(
        "self.candidates.all(a, self.candidates.exists_one(b, b.vendor == a.vendor && "
        "(has(b.model) ? b.model.lowerAscii() : '') == (has(a.model) ? a.model.lowerAscii() : '')))",
        "each (vendor, model) may appear once in candidates: remove the duplicate",
        field_path=".candidates",
        reason="FieldValueDuplicate",
    )
    def _candidates_unique(self) -> bool:
        keys = [(c.vendor, (c.model or "").lower()) for c in self.candidates]
        return len(keys) == len(set(keys))

    @rule(
        "self.candidates.all(c, !(c.vendor == 'huawei' && has(c.model) && "
        "c.model.lowerAscii().contains('910') && !c.model.lowerAscii().contains('910c') && "
        "!c.model.lowerAscii().contains('910_93')) "
        f"|| self.acceleratorsPerReplica in {list(ASCEND910_CARD_COUNTS)})",
        "Ascend910/910B candidates need acceleratorsPerReplica 1, 2, 4 or 8 (an HCCS ring or a whole "
        "server): change acceleratorsPerReplica or the candidate",
        field_path=".acceleratorsPerReplica",
    )
    def _ascend910_card_count(self) -> bool:
        return (
            not any(_ascend_family(c) == "910" for c in self.candidates)
            or self.accelerators_per_replica in ASCEND910_CARD_COUNTS
        )

    @rule(
        "self.candidates.all(c, !(c.vendor == 'huawei' && has(c.model) && "
        "(c.model.lowerAscii().contains('910c') || c.model.lowerAscii().contains('910_93'))) "
        f"|| self.acceleratorsPerReplica in {list(ASCEND910C_CARD_COUNTS)})",
        "Ascend910C candidates need an even acceleratorsPerReplica up to 16 (910C allocates dies in "
        "pairs): change acceleratorsPerReplica or the candidate",
        field_path=".acceleratorsPerReplica",
    )
    def _ascend910c_card_count(self) -> bool:
        return (
            not any(_ascend_family(c) == "910C" for c in self.candidates)
            or self.accelerators_per_replica in ASCEND910C_CARD_COUNTS
        )


def _ascend_family(candidate: Candidate) -> str | None:
    """ "910C", "910" (910/910A/910B and variants) or None, spotted the way the CEL rules do: by
    substring, so every spelling the inventory accepts (Ascend910B3, 910b, Ascend910_9392) counts."""
    if candidate.vendor != Vendor.HUAWEI or candidate.model is None:
        return None
    model = candidate.model.lower()
    if "910c" in model or "910_93" in model:
        return "910C"
    return "910" if "910" in model else None


class ReplicaPlacement(ApiModel):
    """Where one replica was placed, and the network domains of that node."""

    replica: Annotated[int, Field(ge=0, le=MAX_REPLICAS - 1)]
    """Replica index (its rank group)."""
    node: NodeName
    """Node the replica is bound to."""
    candidate_index: Annotated[int, Field(ge=0, le=MAX_CANDIDATES - 1)] | None = None
    """Index in spec.candidates of the accelerator this replica runs on (differs per replica only
    with allowMixedVendors)."""
    link_domain: ShortText | None = None
    """The in-node link domains (HCCS rings, NVLink groups) the replica's cards come from, as their
    indices on the node joined by '+', e.g. 0+1; empty when the node has one domain."""
    rack: ShortText | None = None
    """Rack of the node."""
    zone: ShortText | None = None
    """Zone of the node."""
    region: ShortText | None = None
    """Region of the node."""


class Span(ApiModel):
    """How many distinct domains the placed gang spans; 1 everywhere is the tightest packing."""

    nodes: Annotated[int, Field(ge=0)] = 0
    """Distinct nodes."""
    racks: Annotated[int, Field(ge=0)] = 0
    """Distinct racks."""
    zones: Annotated[int, Field(ge=0)] = 0
    """Distinct zones."""
    regions: Annotated[int, Field(ge=0)] = 0
    """Distinct regions."""


class AITrainingJobStatus(ApiModel):
    """Observed state of a training job, written only by the operator."""

    phase: JobPhase | None = None
    """Pending, Scheduling, Running, Restarting, Succeeded or Failed."""
    conditions: Annotated[list[Condition], Field(max_length=16)] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Latest observations, one per type (Placed, Ready, Restarting, Succeeded, Failed)."""
    vendor: Vendor | None = None
    """Vendor of the chosen candidate."""
    model: ModelName | None = None
    """Accelerator model actually allocated."""
    candidate_index: Annotated[int, Field(ge=0, le=MAX_CANDIDATES - 1)] | None = None
    """Index in spec.candidates of the chosen accelerator."""
    placement: Annotated[list[ReplicaPlacement], Field(max_length=MAX_REPLICAS)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Node and domains of each placed replica, one entry per replica in replica order."""
    # Atomic, not a map keyed by replica: only the operator writes it, always whole, and as a map the API
    # server tracked every field of every entry in managedFields (half the job's bytes at 8 replicas, ~80 KB
    # at 512) and merged it entry by entry on each status write — the costliest write Suanli makes.
    span: Span | None = None
    """Distinct nodes, racks, zones and regions the placement covers."""
    ready_replicas: Annotated[int, Field(ge=0)] = 0
    """Replicas of the current gang whose pods are in phase Running (finished ones are not counted)."""
    restarts: Annotated[int, Field(ge=0)] = 0
    """Gang restarts caused by failures so far (compared with failurePolicy.maxRestarts)."""
    preemptions: Annotated[int, Field(ge=0)] = 0
    """Times a higher-priority job preempted the gang; these do not count against maxRestarts."""
    start_time: Timestamp | None = None
    """When the whole gang first ran."""
    completion_time: Timestamp | None = None
    """When the job succeeded or failed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """metadata.generation this status reflects."""
    reason: Annotated[str, Field(max_length=1024)] | None = None
    """CamelCase reason for the current phase: while Pending, Unschedulable (no room; the message says
    why per candidate), Preempting (waiting for preempted gangs to go), BindFailed (rolled back, will
    re-plan) or InvalidSpec (the message names the field and the fix); Placed and Bound while starting;
    the restart event (PodFailed, NodeLost, ...) while Restarting."""
    message: Message | None = None
    """Why the job is where it is, for humans: e.g. which candidates were tried and why none fit."""
    bad_nodes: Annotated[list[NodeName], Field(max_length=1024)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Nodes blamed for earlier failures, avoided when the gang restarts."""
    previous_nodes: Annotated[list[NodeName], Field(max_length=MAX_REPLICAS)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Nodes the gang ran on before its last restart: the restarted gang prefers their node, rack, zone or
    region (warm image and data caches) when that domain holds it no wider than elsewhere."""

    @property
    def generation(self) -> int:
        """The current gang's number (the `-g<n>-` in its pods' names): one per restart or preemption."""
        return self.restarts + self.preemptions


class AITrainingJob(ApiModel):
    """A distributed training job gang-scheduled onto the first acceptable accelerator that fits."""

    api_version: Literal["suanli.io/v1alpha1"] = "suanli.io/v1alpha1"
    kind: Literal["AITrainingJob"] = "AITrainingJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Kubernetes object metadata, kept as the API returned it."""
    spec: AITrainingJobSpec
    status: AITrainingJobStatus = Field(default_factory=AITrainingJobStatus)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))


def parse_job(obj: Mapping[str, Any]) -> AITrainingJob:
    """Validate a whole AITrainingJob object (as the API returns it); SpecError names each bad field."""
    return parse_object(AITrainingJob, obj)


def parse_job_spec(spec: Mapping[str, Any]) -> AITrainingJobSpec:
    """Validate a bare ``spec`` (e.g. from a manifest's spec block); error paths start at ``spec``."""
    return parse_object(AITrainingJobSpec, spec, root="spec", what="AITrainingJob spec")


def parse_job_status(status: Mapping[str, Any] | None) -> AITrainingJobStatus:
    """Validate a job's ``status`` (empty or missing on a new job)."""
    return parse_object(AITrainingJobStatus, status or {}, root="status", what="AITrainingJob status")
