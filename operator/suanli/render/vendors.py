"""What each vendor's stack expects of a training pod, as data: a new vendor is one entry here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VendorProfile:
    """The per-vendor facts that rendering needs."""

    vendor: str
    collective: str
    """The collective library (NCCL, HCCL, RCCL), exported as SUANLI_COLLECTIVE_BACKEND."""
    torch_backend: str
    """The backend name torch.distributed expects: ROCm builds of torch call RCCL "nccl"."""
    visible_devices_env: tuple[str, ...]
    """Runtime-level visibility variables, set to the container-local indices 0..n-1. The device
    plugins own the physical-id variables (NVIDIA_VISIBLE_DEVICES, ASCEND_VISIBLE_DEVICES), so Suanli
    never overrides those — doing so is how every pod ends up on card 0."""
    tolerations: tuple[str, ...] = ()
    """Taint keys vendor installers commonly put on accelerator nodes, tolerated with NoSchedule."""
    extra_env: dict[str, str] = field(default_factory=dict)
    needs_rank_table: bool = False
    """Ascend's HCCL reads a rank table (hccl.json) rather than discovering peers itself."""


VENDOR_PROFILES: dict[str, VendorProfile] = {
    "nvidia": VendorProfile(
        vendor="nvidia",
        collective="NCCL",
        torch_backend="nccl",
        visible_devices_env=("CUDA_VISIBLE_DEVICES",),
        tolerations=("nvidia.com/gpu",),
    ),
    "huawei": VendorProfile(
        vendor="huawei",
        collective="HCCL",
        torch_backend="hccl",
        visible_devices_env=("ASCEND_RT_VISIBLE_DEVICES",),
        tolerations=("huawei.com/Ascend910", "huawei.com/npu"),
        # Large gangs take minutes to build HCCL links; the 120 s default fails them at start.
        extra_env={"HCCL_CONNECT_TIMEOUT": "1800"},
        needs_rank_table=True,
    ),
    "hygon": VendorProfile(
        vendor="hygon",
        collective="RCCL",
        torch_backend="nccl",
        visible_devices_env=("HIP_VISIBLE_DEVICES",),
        tolerations=("hygon.com/dcu", "hygon.com/hcu"),
    ),
}
