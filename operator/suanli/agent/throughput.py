"""Which throughput backend the agent runs, and what a bench report says about each card.

A report (``suanli.probe.bench``, or several merged by :mod:`.bench_runner`) becomes a Measurement:
the published numbers (verified results only; the slowest verified card at the top level, the
number a gang can count on) and one outcome per device for the health gate (:mod:`.gate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from suanli.api import Vendor

BENCH_CHOICES = ("auto", "none", "cpu", "cuda", "hip", "ascend")
"""``auto`` measures the node's cards with their vendor's backend when the library has it."""

VENDOR_BACKEND = {Vendor.NVIDIA: "cuda", Vendor.HYGON: "hip", Vendor.HUAWEI: "ascend"}
_ALWAYS_AVAILABLE = frozenset({"cpu", "ascend"})  # Ascend dlopens ACL at run time: nothing to compile


def choose_backend(requested: str, vendor: Vendor | None, available: frozenset[str]) -> tuple[str | None, str]:
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
    if backend not in available | _ALWAYS_AVAILABLE:
        return None, (f"the kernels library has no {backend} backend here "
                      f"(available: {', '.join(sorted(available))})")
    return backend, f"{vendor.value} cards measured with the {backend} backend"


class Outcome(StrEnum):
    """How one device's bench ended."""

    OK = "ok"
    """Ran and verified."""
    CORRUPT = "corrupt"
    """Ran, and a result differed from its exact expected value: silent data corruption."""
    ERROR = "error"
    """Could not run (allocation, runtime, no code object): says nothing about the card's health."""
    CRASHED = "crashed"
    """The bench process died (a signal, or no report)."""
    TIMED_OUT = "timeout"
    """The bench process did not finish within its time limit and was killed."""
    SKIPPED = "skipped"
    """Not measured this time (the card was busy with a job)."""


@dataclass(frozen=True)
class DeviceResult:
    """One device's bench, as the gate judges it. Figures are None unless verified."""

    index: int
    outcome: Outcome
    copy_gbs: float | None = None
    fma_tflops: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Measurement:
    """A bench run as the agent publishes and judges it."""

    backend: str
    ok: bool
    error: str | None
    copy_gbs: float | None
    """Slowest verified device's copy bandwidth, GB/s."""
    fma_tflops: float | None
    """Slowest verified device's FMA throughput, TFLOP/s."""
    fma_dtype: str | None
    devices: tuple[DeviceResult, ...]
    devices_seen: int
    """Devices the backend's runtime enumerated; per-device results map to cards only when it equals
    the cards the probe found (a runtime that hides a card shifts every index after it)."""
    copy_method: str = "kernel"
    """``kernel`` (a STREAM copy kernel) or ``dma`` (Ascend: the copy engine, a different figure)."""

    @property
    def for_cards(self) -> bool:
        """Whether the numbers describe accelerator cards (the CPU backend measures the host)."""
        return self.backend != "cpu"

    @property
    def per_device(self) -> dict[int, tuple[float | None, float | None]]:
        """Runtime device index -> (copy GB/s, FMA TFLOP/s), verified results only."""
        return {d.index: (d.copy_gbs, d.fma_tflops) for d in self.devices if d.outcome == Outcome.OK}

    def summary(self) -> str:
        parts = [f"{self.backend}:"]
        if self.copy_gbs is not None:
            parts.append(f"{'DMA copy' if self.copy_method == 'dma' else 'copy'} {self.copy_gbs:.1f} GB/s")
        if self.fma_tflops is not None:
            parts.append(f"FMA {self.fma_tflops:.3g} TFLOP/s ({self.fma_dtype or 'fp64'})")
        if self.error:
            parts.append(f"error: {self.error}")
        return " ".join(parts)


def _tflops(gflops: Any) -> float | None:
    return float(gflops) / 1000.0 if isinstance(gflops, int | float) else None


def _gbs(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def device_outcome(d: dict[str, Any]) -> Outcome:
    """A device entry's outcome: the runner's verdict when it set one, else from the kernels' counts."""
    if d.get("outcome") in Outcome.__members__.values():
        return Outcome(d["outcome"])
    if (d.get("stream_mismatches") or 0) > 0 or (d.get("fma_mismatches") or 0) > 0:
        return Outcome.CORRUPT
    if d.get("verified") and d.get("status") == "ok":
        return Outcome.OK
    return Outcome.ERROR


def read_bench(raw: dict[str, Any]) -> Measurement:
    """Turn a bench report into a Measurement; unverified numbers are dropped."""
    results: list[DeviceResult] = []
    dtype: str | None = None
    for d in raw.get("devices") or []:
        outcome = device_outcome(d)
        if outcome == Outcome.OK:
            results.append(DeviceResult(int(d["index"]), outcome, _gbs(d.get("copy_gbs")),
                                        _tflops(d.get("fma_gflops"))))
            dtype = dtype or d.get("fma_dtype")
        else:
            results.append(DeviceResult(int(d["index"]), outcome, detail=d.get("error")))
    if raw.get("backend") == "cpu":
        dtype = "fp64"
    seen = raw.get("device_count")
    return Measurement(
        backend=str(raw.get("backend")),
        ok=raw.get("status") == "ok",
        error=raw.get("error"),
        copy_gbs=_gbs(raw.get("copy_gbs")),
        fma_tflops=_tflops(raw.get("fma_gflops")),
        fma_dtype=dtype,
        devices=tuple(results),
        devices_seen=int(seen) if isinstance(seen, int) else len(results),
        copy_method=str(raw.get("copy_method") or "kernel"),
    )


def failed_measurement(backend: str, error: str) -> Measurement:
    """A bench that could not run at all (library missing, bad options)."""
    return Measurement(backend, False, error, None, None, None, (), 0)
