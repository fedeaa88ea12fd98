"""The agent's loop: probe, measure (once per process), publish; then wait for the next interval.

Probing and measuring are injected so the loop is tested with fakes and a fake clock; the real ones
call the compiled library through ``suanli.probe``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from suanli import probe as kernels
from suanli.api.base import now as utc_now

from .publisher import NodeNotFoundError, Published
from .report import NodeReport, ProbeFailedError, build_report
from .throughput import Measurement, choose_backend, failed_measurement, read_bench

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """What ``suanli agent`` was asked to do; every field has a flag of the same name."""

    node_name: str
    """The Node to describe: the DaemonSet passes spec.nodeName through the downward API."""
    sysfs_root: str = "/sys"
    """sysfs mount to scan; a test points it at a fixture tree."""
    interval_seconds: float = 300.0
    """Seconds between probes. Health changes that matter (a lost card) also reach the device plugin
    and the kubelet at once; five minutes keeps a 10k-node fleet at ~33 Node writes a second at most,
    and far fewer since unchanged labels are not written."""
    once: bool = False
    """Probe and publish once, then exit (for debugging and tests)."""
    bench: str = "auto"
    """auto (the node's vendor backend when built in, else skip), none, cpu, cuda, hip or ascend."""
    bench_budget_seconds: float = 2.0
    """Time per measurement (bandwidth, then FMA), per card. Measured once per agent start only, so a
    busy card is disturbed for seconds per rollout, not every interval."""
    lib_path: str | None = None
    """Colon-separated directories with the vendor libraries (NVML, DCMI, ROCm SMI, ACL); default:
    $SUANLI_VENDOR_LIB_PATH, else the vendors' standard locations."""
    request_timeout_seconds: float = 10.0
    """Per API request; a stalled API server delays one cycle, never hangs the agent."""
    retry_seconds: float = 30.0
    """Wait after a failed publish before trying again (shorter than the interval, so a restarted
    API server does not leave stale health for five minutes)."""

    def __post_init__(self) -> None:
        if not self.node_name:
            raise ValueError("--node-name is empty: pass the node's name or set NODE_NAME "
                             "(DaemonSet: env NODE_NAME from fieldRef spec.nodeName)")
        if not self.interval_seconds > 0:
            raise ValueError(f"--interval={self.interval_seconds} must be a positive number of seconds")
        if not 0 < self.bench_budget_seconds <= 3600:
            raise ValueError(f"--bench-budget={self.bench_budget_seconds} must be in (0, 3600] seconds")


class Publishing(Protocol):
    def publish(
        self,
        report: NodeReport | None,
        measurement: Measurement | None,
        bench_note: str,
        now: datetime,
        probe_error: str | None = None,
    ) -> Published: ...


ProbeFn = Callable[[str, str | None], kernels.ProbeReport]
BenchFn = Callable[[str, kernels.BenchOptions], dict[str, Any]]


def _built_backends() -> frozenset[str]:
    return frozenset(str(kernels.build_info().get("backends", "cpu")).split(","))


class Agent:
    """One node's agent. ``cycle`` is one probe-and-publish; ``run`` repeats it until stopped."""

    def __init__(
        self,
        settings: AgentSettings,
        publisher: Publishing,
        probe: ProbeFn = kernels.probe,
        bench: BenchFn = kernels.bench,
        built_backends: Callable[[], frozenset[str]] = _built_backends,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self._probe = probe
        self._bench = bench
        self._built_backends = built_backends
        self._clock = clock
        self.measurement: Measurement | None = None
        self._bench_done = False
        self._bench_note = "not measured yet"

    def _measure(self, report: NodeReport) -> None:
        """Runs the bench once per process (the first successful probe decides the backend)."""
        self._bench_done = True
        try:
            backend, self._bench_note = choose_backend(self.settings.bench, report.vendor, self._built_backends())
        except kernels.KernelsUnavailableError as exc:
            self._bench_note = str(exc)
            return
        if backend is None:
            log.info("throughput not measured: %s", self._bench_note)
            return
        # CUDA numbers devices fastest-first by default; bus order makes index i the i-th card.
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        options = kernels.BenchOptions(budget_s=self.settings.bench_budget_seconds, lib_path=self.settings.lib_path)
        try:
            self.measurement = read_bench(self._bench(backend, options))
        except (kernels.KernelsUnavailableError, ValueError, MemoryError) as exc:
            self.measurement = failed_measurement(backend, str(exc))
        log.info("throughput %s", self.measurement.summary())

    def cycle(self) -> tuple[bool, Published]:
        """Probe (and on the first good probe, measure), then publish. Returns (probe ok, what was written)."""
        try:
            report = build_report(self._probe(self.settings.sysfs_root, self.settings.lib_path))
        except (kernels.KernelsUnavailableError, ProbeFailedError, MemoryError) as exc:
            log.error("probe failed, leaving labels as they are: %s", exc)
            return False, self.publisher.publish(None, self.measurement, self._bench_note, self._clock(), str(exc))
        if not self._bench_done:
            self._measure(report)
        published = self.publisher.publish(report, self.measurement, self._bench_note, self._clock())
        log.info(
            "%s: %d %s %s card(s), %d usable%s%s",
            self.settings.node_name, report.count, report.vendor or "-", report.model or "",
            report.usable,
            f"; labels {published.labels}" if published.labels else "",
            {True: "; tainted", False: "; taint removed", None: ""}[published.taint],
        )
        return True, published

    def run(self, stop: threading.Event) -> int:
        """Cycle every interval until ``stop`` is set; with ``once``, one cycle and its exit status."""
        while True:
            wait = self.settings.interval_seconds
            try:
                ok, _ = self.cycle()
                if self.settings.once:
                    return 0 if ok else 1
            except Exception as exc:
                # Any API or network failure: log, retry sooner than the interval, never die (a dead
                # agent leaves health stale; a retrying one recovers when the API server does).
                detail = str(exc) if isinstance(exc, NodeNotFoundError) else f"{type(exc).__name__}: {exc}"
                log.error("publishing failed, retrying in %.0fs: %s", min(wait, self.settings.retry_seconds), detail)
                if self.settings.once:
                    return 1
                wait = min(wait, self.settings.retry_seconds)
            if stop.wait(wait):
                return 0
