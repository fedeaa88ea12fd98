"""Suanli's node agent: probes a node's accelerators and publishes what it found (docs/agent.md).

Pure core, unit-tested without a cluster: :mod:`.report` (probe -> facts, the health rule),
:mod:`.labels` (our node labels and taint), :mod:`.status` (the AcceleratorNode),
:mod:`.transitions` (health Events), :mod:`.throughput` (bench choice and results),
:mod:`.golden` (expected figures per model) and :mod:`.gate` (bench results -> card health).
I/O: :mod:`.publisher` (the only module that talks to the API server), :mod:`.bench_runner`
(benches in child processes) and :mod:`.runner` (the loop).
"""

from .gate import GatePolicy, Reason, Verdict, apply_verdicts, judge, merge_verdicts
from .golden import GoldenError, GoldenTable
from .labels import OWNED_LABELS, TAINT, desired_labels, is_label_value, label_patch, taint_update, wants_taint
from .report import Card, NodeReport, ProbeFailedError, build_report, card_health
from .runner import Agent, AgentSettings
from .status import accelerator_node, probe_failed_status, report_status
from .throughput import BENCH_CHOICES, Measurement, choose_backend, read_bench
from .transitions import Transition, health_transitions

__all__ = [
    "BENCH_CHOICES",
    "OWNED_LABELS",
    "TAINT",
    "Agent",
    "AgentSettings",
    "Card",
    "GatePolicy",
    "GoldenError",
    "GoldenTable",
    "Measurement",
    "NodeReport",
    "ProbeFailedError",
    "Reason",
    "Transition",
    "Verdict",
    "accelerator_node",
    "apply_verdicts",
    "build_report",
    "card_health",
    "choose_backend",
    "desired_labels",
    "health_transitions",
    "is_label_value",
    "judge",
    "label_patch",
    "merge_verdicts",
    "probe_failed_status",
    "read_bench",
    "report_status",
    "taint_update",
    "wants_taint",
]
