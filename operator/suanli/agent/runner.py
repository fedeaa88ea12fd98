"""The agent's loop: probe, bench when due, judge, publish; then wait for the next interval.

A bench is due at start, every ``bench_interval_seconds``, and when someone asks for one (the
``suanli.io/bench-request`` annotation on the node's AcceleratorNode). It runs in child processes
(:mod:`.bench_runner`), and the health gate (:mod:`.gate`) turns its results into card health.
Probing and benching are injected so the loop is tested with fakes and a fake clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from suanli import probe as kernels
from suanli.api import AcceleratorNodeStatus
from suanli.api.base import now as utc_now

from .bench_runner import BenchPlan, run_plan
from .gate import GatePolicy, Verdict, apply_verdicts, judge, merge_verdicts, verdicts_from_status
from .golden import GoldenTable
from .publisher import NodeNotFoundError, Published
from .report import Card, NodeReport, ProbeFailedError, build_report
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
    """Time per measurement (bandwidth, then FMA), per card; all cards are measured at once."""
    bench_interval_seconds: float = 86400.0
    """Seconds between scheduled re-tests (0: only at start and on request). Daily: a card that
    degrades is found within a day, and idle cards only are measured, so jobs are not disturbed."""
    bench_timeout_seconds: float = 120.0
    """Wall-clock limit of one card's bench process, start-up included; a hung bench is killed and
    the card reported Degraded (BenchTimedOut). Two 2 s measurements take ~10 s on a real card."""
    busy_memory_fraction: float = 0.1
    """A card with more than this fraction of its memory in use (per its management library) is
    running a job: it is not benched. Idle cards hold little: a few hundred MiB on NVIDIA, ~3 GB of
    64 GB on Ascend 910B (firmware); a training job holds most of it."""
    golden_file: str | None = None
    """YAML whose entries replace or add to the built-in golden table (operator/suanli/agent/golden.yaml)."""
    golden_fraction: float = 0.75
    """Degraded below this fraction of the golden figure (DCGM's rule)."""
    median_fraction: float = 0.8
    """Degraded below this fraction of the node's median card."""
    place_degraded: bool = False
    """Count Degraded cards as usable; by default they are taken out like Unhealthy ones."""
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
        if self.bench_interval_seconds < 0:
            raise ValueError(f"--bench-interval={self.bench_interval_seconds} must be >= 0 (0: start and on request)")
        if not self.bench_timeout_seconds > 2 * self.bench_budget_seconds:
            raise ValueError(f"--bench-timeout={self.bench_timeout_seconds} must exceed twice --bench-budget "
                             f"({self.bench_budget_seconds}): a bench is a bandwidth and an FMA measurement")
        if not 0 <= self.busy_memory_fraction <= 1:
            raise ValueError(f"--busy-memory-fraction={self.busy_memory_fraction} must be in [0, 1]")
        self.policy()  # validates the fractions

    def policy(self) -> GatePolicy:
        return GatePolicy(golden_fraction=self.golden_fraction, median_fraction=self.median_fraction,
                          place_degraded=self.place_degraded)


class Publishing(Protocol):
    def publish(
        self,
        report: NodeReport | None,
        measurement: Measurement | None,
        bench_note: str,
        now: datetime,
        probe_error: str | None = None,
    ) -> Published: ...

    def last_status(self) -> AcceleratorNodeStatus | None: ...

    def bench_request(self) -> str | None: ...

    def ack_bench_request(self, token: str) -> None: ...


ProbeFn = Callable[[str, str | None], kernels.ProbeReport]
BenchFn = Callable[[BenchPlan], dict[str, Any]]


class Agent:
    """One node's agent. ``cycle`` is one probe-and-publish; ``run`` repeats it until stopped."""

    def __init__(
        self,
        settings: AgentSettings,
        publisher: Publishing,
        probe: ProbeFn = kernels.probe,
        bench: BenchFn = run_plan,
        available_backends: Callable[[], frozenset[str]] = kernels.available_backends,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        golden: GoldenTable | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self._probe = probe
        self._bench = bench
        self._available = available_backends
        self._clock = clock
        self._monotonic = monotonic
        self.golden = golden or GoldenTable.load(Path(settings.golden_file) if settings.golden_file else None)
        self.policy = settings.policy()
        self.measurement: Measurement | None = None
        self.verdicts: dict[str, Verdict] | None = None
        """The gate's last word per card (bus id); None until read back from the last published status."""
        self._next_bench: float | None = None
        self._bench_note = "not measured yet"

    def _bench_due(self) -> bool:
        return self._next_bench is None or (
            self.settings.bench_interval_seconds > 0 and self._monotonic() >= self._next_bench
        )

    def _busy(self, card: Card) -> bool:
        """Holding a job's memory (unknown usage counts as idle: the driver cannot tell)."""
        if card.memory_used_mib is None or not card.memory_mib:
            return False
        return card.memory_used_mib > self.settings.busy_memory_fraction * card.memory_mib

    def _measure(self, report: NodeReport, on_demand: bool) -> None:
        """Bench the idle cards (in child processes) and let the gate judge them."""
        interval = self.settings.bench_interval_seconds
        self._next_bench = self._monotonic() + (interval if interval > 0 else float("inf"))
        try:
            backend, self._bench_note = choose_backend(self.settings.bench, report.vendor, self._available())
        except kernels.KernelsUnavailableError as exc:
            self._bench_note = str(exc)
            return
        if backend is None:
            log.info("throughput not measured: %s", self._bench_note)
            return
        cards = report.vendor_cards
        busy = frozenset(c.bus_id for c in cards if self._busy(c))
        devices = None if backend == "cpu" else [i for i, c in enumerate(cards) if c.bus_id not in busy]
        if devices == []:
            self._bench_note = (f"all {len(cards)} cards busy (over {self.settings.busy_memory_fraction:.0%} of "
                                "memory in use): not measured")
            log.info("throughput not measured: %s", self._bench_note)
            return
        plan = BenchPlan(backend, devices, budget_s=self.settings.bench_budget_seconds,
                         timeout_s=self.settings.bench_timeout_seconds, lib_path=self.settings.lib_path)
        try:
            raw = self._bench(plan)
        except (OSError, ValueError) as exc:
            self.measurement = failed_measurement(backend, f"cannot start the bench: {exc}")
            log.error("bench %s: %s", backend, self.measurement.error)
            return
        if devices is not None and "device_count" not in raw:
            # No child lived to say what the runtime lists; the indices came from the probe's cards.
            raw["device_count"] = len(cards)
        self.measurement = read_bench(raw)
        found, notes = judge(cards, self.measurement, self.golden, self.policy, busy)
        self.verdicts = merge_verdicts(self.verdicts or {}, found, on_demand)
        for note in notes:
            log.warning("%s", note)
        if busy:
            self._bench_note += f"; {len(busy)} busy card(s) not measured"
        log.info("throughput %s", self.measurement.summary())

    def _seed_verdicts(self) -> None:
        """The last agent's gate verdicts, once: a card that failed verification stays out after a restart."""
        if self.verdicts is not None:
            return
        try:
            self.verdicts = verdicts_from_status(self.publisher.last_status())
        except Exception as exc:  # the API is down: start clean, the next bench judges again
            log.warning("could not read the last published status: %s", exc)
            self.verdicts = {}

    def cycle(self) -> tuple[bool, Published]:
        """Probe, bench when due or asked, judge, then publish. Returns (probe ok, what was written)."""
        try:
            report = build_report(self._probe(self.settings.sysfs_root, self.settings.lib_path))
        except (kernels.KernelsUnavailableError, ProbeFailedError, MemoryError) as exc:
            log.error("probe failed, leaving labels as they are: %s", exc)
            return False, self.publisher.publish(None, self.measurement, self._bench_note, self._clock(), str(exc))
        self._seed_verdicts()
        try:
            request = self.publisher.bench_request()
        except Exception as exc:
            log.warning("could not read bench requests: %s", exc)
            request = None
        if request is not None or self._bench_due():
            self._measure(report, on_demand=request is not None)
        report = apply_verdicts(report, self.verdicts or {}, self.policy)
        published = self.publisher.publish(report, self.measurement, self._bench_note, self._clock())
        if request is not None:
            self.publisher.ack_bench_request(request)
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
