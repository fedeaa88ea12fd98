"""The registry of Suanli's API kinds: what the CRD generator emits and how kubectl shows each kind.

Adding a kind is one entry in ``KINDS``: its models plus the names and columns kubectl shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import acceleratornode as an
from . import aitrainingjob as aj
from .base import GROUP, VERSION, ApiModel


@dataclass(frozen=True)
class PrinterColumn:
    """A column of ``kubectl get``."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0
    """0 shows in ``kubectl get``; 1 only with ``-o wide``."""

    def to_crd(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


@dataclass(frozen=True)
class KindInfo:
    """Everything the CRD of one kind needs besides what the models already say."""

    kind: str
    plural: str
    scope: Literal["Namespaced", "Cluster"]
    model: type[ApiModel]
    """The whole-object model; its description heads the CRD schema."""
    spec: type[ApiModel]
    status: type[ApiModel]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("suanli",)
    printer_columns: tuple[PrinterColumn, ...] = ()
    selectable_fields: tuple[str, ...] = ()
    """JSON paths usable with ``kubectl get --field-selector`` (string, integer or boolean fields)."""
    object_rules: tuple[dict[str, str], ...] = ()
    """CEL rules on the whole object (x-kubernetes-validations at the root), e.g. on metadata.name."""
    group: str = GROUP
    version: str = VERSION

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


AITRAININGJOB = KindInfo(
    kind=aj.KIND,
    plural=aj.PLURAL,
    scope="Namespaced",
    model=aj.AITrainingJob,
    spec=aj.AITrainingJobSpec,
    status=aj.AITrainingJobStatus,
    short_names=("aitj",),
    printer_columns=(
        PrinterColumn("Phase", "string", ".status.phase", "Lifecycle phase"),
        PrinterColumn("Vendor", "string", ".status.vendor", "Vendor of the chosen accelerator"),
        PrinterColumn("Model", "string", ".status.model", "Model of the chosen accelerator"),
        PrinterColumn("Replicas", "integer", ".spec.replicas", "Replicas requested"),
        PrinterColumn("Ready", "integer", ".status.readyReplicas", "Replicas running and ready"),
        PrinterColumn("Racks", "integer", ".status.span.racks", "Racks the placed gang spans"),
        PrinterColumn("Restarts", "integer", ".status.restarts", "Gang restarts so far"),
        PrinterColumn("Queue", "string", ".spec.queue", "Queue the job waits in", priority=1),
        PrinterColumn("Reason", "string", ".status.reason", "Why the job is in its phase", priority=1),
        AGE,
    ),
    selectable_fields=(".spec.queue", ".status.phase", ".status.vendor"),
    object_rules=(aj.NAME_RULE,),
)

ACCELERATORNODE = KindInfo(
    kind=an.KIND,
    plural=an.PLURAL,
    scope="Cluster",
    model=an.AcceleratorNode,
    spec=an.AcceleratorNodeSpec,
    status=an.AcceleratorNodeStatus,
    short_names=("accn",),
    printer_columns=(
        PrinterColumn("Node", "string", ".spec.nodeName", "Kubernetes node"),
        PrinterColumn("Vendor", "string", ".status.vendor", "Accelerator vendor"),
        PrinterColumn("Model", "string", ".status.model", "Accelerator model"),
        PrinterColumn("Healthy", "integer", ".status.healthyDevices", "Healthy devices"),
        PrinterColumn("Devices", "integer", ".status.totalDevices", "Devices found"),
        PrinterColumn("Probed", "date", ".status.lastProbeTime", "Last probe", priority=1),
        AGE,
    ),
    selectable_fields=(".spec.nodeName", ".status.vendor"),
)

KINDS: tuple[KindInfo, ...] = (AITRAININGJOB, ACCELERATORNODE)
"""Every kind Suanli serves; the CRD generator emits one CRD per entry."""


def kind_info(kind: str) -> KindInfo:
    """Look a kind up by name (``AITrainingJob``), plural or short name, case-insensitively."""
    wanted = kind.lower()
    for info in KINDS:
        if wanted in (info.kind.lower(), info.plural, *info.short_names):
            return info
    known = ", ".join(info.kind for info in KINDS)
    raise KeyError(f"unknown kind {kind!r}: known kinds are {known}")
