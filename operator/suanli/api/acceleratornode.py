"""AcceleratorNode: what Suanli's node agent found on one node — devices, health, measured speed.

Cluster-scoped and named after the Kubernetes node. Vendors' own labels are sparse and get renamed
(see docs/api.md); the agent probes the devices itself and publishes one normalised record per node
that the inventory and planner read.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from .base import ApiModel, Condition, ModelName, NodeName, ShortText, Timestamp, Vendor
from .errors import parse_object

KIND = "AcceleratorNode"
PLURAL = "acceleratornodes"

MAX_DEVICES = 64


class DeviceHealth(StrEnum):
    """Health of one device as the agent last saw it."""

    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    DEGRADED = "Degraded"
    """Works, but measured well below its model's golden figure or its node's other cards (or its
    bench crashed or hung); not placed unless the agent runs with ``--place-degraded``."""
    UNKNOWN = "Unknown"


class Throughput(ApiModel):
    """What the probe kernel measured on a device, to rank otherwise equal candidates."""

    matmul_tflops: Annotated[float, Field(ge=0)] | None = Field(default=None, alias="matmulTFLOPS")
    """Dense matrix-multiply throughput in TFLOP/s."""
    memory_bandwidth_gbps: Annotated[float, Field(ge=0)] | None = Field(
        default=None, alias="memoryBandwidthGBps"
    )
    """Device memory copy bandwidth in GB/s (10^9 bytes)."""
    dtype: Annotated[str, Field(max_length=16)] | None = None
    """Element type the matmul ran in, e.g. bf16 or fp16."""


class Device(ApiModel):
    """One accelerator device on the node."""

    index: Annotated[int, Field(ge=0, le=MAX_DEVICES - 1)]
    """Device index as the vendor runtime numbers it (what *_VISIBLE_DEVICES takes)."""
    vendor: Vendor
    """Device vendor."""
    model: ModelName
    """Normalised model name, e.g. Ascend910B3, H100, K100."""
    memory_mib: Annotated[int, Field(ge=0)] | None = Field(default=None, alias="memoryMiB")
    """Device memory in MiB."""
    health: DeviceHealth = DeviceHealth.UNKNOWN
    """Healthy, Unhealthy, Degraded or Unknown."""
    health_reason: Annotated[str, Field(max_length=64, pattern=r"^[A-Z][A-Za-z0-9]*$")] | None = None
    """Why the device is not Healthy, CamelCase (``DataCorruption``, ``BelowGolden``, ``DriverReported``)."""
    bus_id: (
        Annotated[
            str, Field(max_length=32, pattern=r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
        ]
        | None
    ) = None
    """PCI bus id (domain:bus:device.function), stable across reboots unlike the index."""
    numa_node: Annotated[int, Field(ge=-1, le=1024)] | None = None
    """NUMA node the device hangs off; -1 when the platform does not say."""
    link_domain: ShortText | None = None
    """Devices sharing a link domain talk over the fast interconnect (NVLink, HCCS ring, xGMI)."""
    throughput: Throughput | None = None
    """Last probe measurement."""


class AcceleratorNodeSpec(ApiModel):
    """Which node this record describes."""

    node_name: NodeName
    """Name of the Kubernetes node."""


class AcceleratorNodeStatus(ApiModel):
    """What the node agent observed; written by the agent only."""

    vendor: Vendor | None = None
    """Vendor of the node's devices (a node carries one vendor's accelerators)."""
    model: ModelName | None = None
    """Model of the node's devices."""
    devices: Annotated[list[Device], Field(max_length=MAX_DEVICES)] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["index"]},
    )
    """Every accelerator found, healthy or not."""
    total_devices: Annotated[int, Field(ge=0)] = 0
    """Devices found."""
    healthy_devices: Annotated[int, Field(ge=0)] = 0
    """Devices currently Healthy."""
    probe_version: Annotated[str, Field(max_length=64)] | None = None
    """Version of the agent's probe, to tell old measurements from new."""
    last_probe_time: Timestamp | None = None
    """When the agent last probed; old values mean the agent is gone and health is unknown."""
    errors: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=32)] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Problems the last probe hit (driver missing, library failed to load), newest first."""
    conditions: Annotated[list[Condition], Field(max_length=16)] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Latest observations, one per type."""


class AcceleratorNode(ApiModel):
    """The accelerators of one node, as Suanli's node agent found them."""

    api_version: Literal["suanli.io/v1alpha1"] = "suanli.io/v1alpha1"
    kind: Literal["AcceleratorNode"] = "AcceleratorNode"
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Kubernetes object metadata, kept as the API returned it."""
    spec: AcceleratorNodeSpec
    status: AcceleratorNodeStatus = Field(default_factory=AcceleratorNodeStatus)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))


def parse_node(obj: Mapping[str, Any]) -> AcceleratorNode:
    """Validate a whole AcceleratorNode object; SpecError names each bad field."""
    return parse_object(AcceleratorNode, obj)
