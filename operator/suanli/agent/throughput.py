"""Which throughput backend the agent runs, and what a bench report means for the published numbers.

Measuring is optional and never touches health: a bench that fails (a busy card out of memory, a
missing runtime) leaves the previous numbers in place and is reported as a condition. Only a
verified measurement is published; the bench reports the slowest verified card at the top level,
and that is the per-card number a gang can count on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from suanli.api import Vendor

BENCH_CHOICES = ("auto", "none", "cpu", "cuda", "hip", "ascend")
"""``auto`` measures the node's cards with their vendor's backend when the library has it."""

VENDOR_BACKEND = {Vendor.NVIDIA: "cuda", Vendor.HYGON: "hip", Vendor.HUAWEI: "ascend"}
_ALWAYS_BUILT = frozenset({"cpu", "ascend"})  # the Ascend path dlopens ACL at run time: nothing to compile


def choose_backend(requested: str, vendor: Vendor | None, built: frozenset[str]) -> tuple[str | None, str]:
    """The backend to run (None to skip) and why, for the Benchmarked condition's message."""
    if requested not in BENCH_CHOICES:
        raise ValueError(f"bench={requested!r} is not one of {', '.join(BENCH_CHOICES)}")
    if requested == "none":
        return None, "measurement disabled (--bench none)"
    if requested != "auto":
        return requested, f"--bench {requested}"
    if vendor is None:
        return None, "no accelerator to measure"
    backend = VENDOR_BACKEND[vendor]
    if backend not in built | _ALWAYS_BUILT:
        return None, f"the kernels library was built without the {backend} backend (built: {', '.join(sorted(built))})"
    return backend, f"{vendor.value} cards measured with the {backend} backend"


@dataclass(frozen=True)
class Measurement:
    """A bench run as the agent publishes it."""

    backend: str
    ok: bool
    error: str | None
    copy_gbs: float | None
    """Slowest verified device's copy bandwidth, GB/s."""
    fma_tflops: float | None
    """Slowest verified device's FMA throughput, TFLOP/s."""
    fma_dtype: str | None
    per_device: dict[int, tuple[float | None, float | None]]
    """Runtime device index -> (copy GB/s, FMA TFLOP/s), verified results only."""
    devices_seen: int
    """Devices the backend's runtime enumerated; per-device numbers map to cards only when it equals
    the cards the probe found (a runtime that hides a card shifts every index after it)."""

    @property
    def for_cards(self) -> bool:
        """Whether the numbers describe accelerator cards (the CPU backend measures the host)."""
        return self.backend != "cpu"

    def summary(self) -> str:
        parts = [f"{self.backend}:"]
        if self.copy_gbs is not None:
            parts.append(f"copy {self.copy_gbs:.1f} GB/s")
        if self.fma_tflops is not None:
            parts.append(f"FMA {self.fma_tflops:.3g} TFLOP/s ({self.fma_dtype or 'fp64'})")
        if self.error:
            parts.append(f"error: {self.error}")
        return " ".join(parts)


def _tflops(gflops: Any) -> float | None:
    return float(gflops) / 1000.0 if isinstance(gflops, int | float) else None


def _gbs(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def read_bench(raw: dict[str, Any]) -> Measurement:
    """Turn a bench report (``suanli.probe.bench``) into a Measurement; unverified numbers are dropped."""
    per_device: dict[int, tuple[float | None, float | None]] = {}
    dtype: str | None = None
    for d in raw.get("devices") or []:
        if d.get("verified") and d.get("status") == "ok":
            per_device[int(d["index"])] = (_gbs(d.get("copy_gbs")), _tflops(d.get("fma_gflops")))
            dtype = dtype or d.get("fma_dtype")
    if raw.get("backend") == "cpu":
        dtype = "fp64"
    return Measurement(
        backend=str(raw.get("backend")),
        ok=raw.get("status") == "ok",
        error=raw.get("error"),
        copy_gbs=_gbs(raw.get("copy_gbs")),
        fma_tflops=_tflops(raw.get("fma_gflops")),
        fma_dtype=dtype,
        per_device=per_device,
        devices_seen=len(raw.get("devices") or []),
    )


def failed_measurement(backend: str, error: str) -> Measurement:
    """A bench that could not run at all (library missing, bad options)."""
    return Measurement(backend, False, error, None, None, None, {}, 0)
