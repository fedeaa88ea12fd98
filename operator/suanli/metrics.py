"""Prometheus metrics: one `suanli_` prefix, `_total`/`_seconds` suffixes, low-cardinality labels.

Counters and histograms are fed by the engine as things happen; gauges of current state (jobs by phase,
free and allocated accelerators, node health) are computed at scrape time by a collector from the last
scheduling cycle's snapshot — what the scheduler itself believed — so a scrape never waits for, or holds
up, a scheduling cycle. `Metrics.serve` exposes them to authorised scrapers only (`metrics_auth`:
TokenReview + SubjectAccessReview, as controller-runtime does).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from typing import Protocol

from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .inventory import Inventory
from .metrics_auth import MetricsServer, ScrapeAuthorizer


class Metrics:
    """Event-driven metrics; the engine calls these methods."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.scheduling_latency = Histogram(
            "suanli_scheduling_latency_seconds",
            "Time from a job's creation (or its gang restart) to every replica bound.",
            ["vendor"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=self.registry,
        )
        self.placement_span = Histogram(
            "suanli_placement_span",
            "Topology domains a placed gang uses, per level (1 = the whole gang in one domain).",
            ["level"],
            buckets=(1, 2, 3, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.accelerator_seconds = Counter(
            "suanli_accelerator_seconds_total",
            "Accelerator-seconds held by running gangs, for metering and chargeback.",
            ["namespace", "vendor", "model"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "suanli_gang_restarts_total",
            "Whole-gang restarts, by the event that caused them.",
            ["namespace", "reason"],
            registry=self.registry,
        )
        self.bind_failures = Counter(
            "suanli_bind_failures_total",
            "Gangs whose binding failed and was rolled back.",
            registry=self.registry,
        )
        self.api_requests = Counter(
            "suanli_api_requests_total",
            "Write (and rare read) requests the engine sent to the API server, by verb, resource and HTTP code "
            "(0 when no response came back); list and watch calls of the feeds are not counted.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )

        self.watch_lag = Histogram(
            "suanli_watch_lag_seconds",
            "Time from a watch event's arrival to the engine's view holding it, by resource.",
            ["resource"],
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def gang_bound(self, vendor: str, seconds: float, span: Mapping[str, int]) -> None:
        self.scheduling_latency.labels(vendor).observe(max(seconds, 0.0))
        for level, count in span.items():
            if count:
                self.placement_span.labels(level).observe(count)

    def api_request(self, verb: str, resource: str, code: int) -> None:
        self.api_requests.labels(verb, resource, str(code)).inc()

    def gang_restarted(self, namespace: str, reason: str) -> None:
        self.restarts.labels(namespace, reason).inc()

    def meter(self, namespace: str, vendor: str, model: str, accelerator_seconds: float) -> None:
        if accelerator_seconds > 0:
            self.accelerator_seconds.labels(namespace, vendor, model).inc(accelerator_seconds)

    def serve(
        self,
        port: int,
        addr: str = "0.0.0.0",
        *,
        api: ApiClient | None = None,
        tls: tuple[str, str] | None = None,
    ) -> MetricsServer:
        """Serve /metrics on a daemon thread, to authorised scrapers only (see `ScrapeAuthorizer`).

        `api` asks the API server about each scrape's token; None means a client on the default
        configuration (what the operator loaded at start-up). `tls` is (certfile, keyfile) to serve HTTPS.
        """
        return MetricsServer.start(self.registry, ScrapeAuthorizer(api or ApiClient()), port, addr, tls)


class StateView(Protocol):
    """What the state collector reads: immutable views the engine publishes, so no lock is shared."""

    def metrics_inventory(self) -> Inventory: ...

    def job_phases(self) -> Mapping[str, int]: ...


class StateCollector(Collector):
    """Gauges of current state, computed from the engine's published view at each scrape."""

    def __init__(self, view: StateView) -> None:
        self.view = view

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: the label sets depend on the cluster

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("suanli_jobs", "AITrainingJobs by phase.", labels=["phase"])
        accel = GaugeMetricFamily(
            "suanli_accelerators", "Accelerators by vendor, model and state.", labels=["vendor", "model", "state"]
        )
        nodes = GaugeMetricFamily(
            "suanli_nodes", "Accelerator nodes by vendor and health.", labels=["vendor", "health"]
        )
        phases = self.view.job_phases()
        inventory = self.view.metrics_inventory()
        free: Tally[tuple[str, str]] = Tally()
        allocated: Tally[tuple[str, str]] = Tally()
        unhealthy: Tally[tuple[str, str]] = Tally()
        health: Tally[tuple[str, str]] = Tally()
        for node in inventory.nodes():
            state = inventory.state(node.name)
            pool = (node.vendor, node.model)
            idle = state.free_cards if state is not None and node.schedulable else 0
            broken = max(node.cards - node.usable_cards, 0)
            free[pool] += idle
            unhealthy[pool] += broken
            allocated[pool] += max(node.usable_cards - (state.free_cards if state else 0), 0)
            health[
                (
                    node.vendor,
                    "healthy"
                    if not broken and node.schedulable
                    else "degraded"
                    if node.schedulable
                    else "unschedulable",
                )
            ] += 1
        for phase in ("Pending", "Scheduling", "Running", "Restarting", "Succeeded", "Failed"):
            jobs.add_metric([phase], phases.get(phase, 0))
        for state_name, tally in (("free", free), ("allocated", allocated), ("unhealthy", unhealthy)):
            for (vendor, model), count in sorted(tally.items()):
                accel.add_metric([vendor, model, state_name], count)
        for (vendor, label), count in sorted(health.items()):
            nodes.add_metric([vendor, label], count)
        yield jobs
        yield accel
        yield nodes
