"""``suanli agent``'s command-line flags, one per AgentSettings field (docs/agent.md lists them)."""

from __future__ import annotations

import argparse
import os

from .runner import AgentSettings
from .throughput import BENCH_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent's flags; defaults are AgentSettings' so the two never disagree."""
    d = AgentSettings(node_name="defaults")
    parser.add_argument("--node-name", default=os.environ.get("NODE_NAME", ""), metavar="NAME",
                        help="the Node to describe (default: $NODE_NAME, set from spec.nodeName in the DaemonSet)")
    parser.add_argument("--sysfs-root", default=d.sysfs_root, metavar="DIR",
                        help="sysfs mount to scan (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=d.interval_seconds, metavar="SECONDS",
                        help="seconds between probes (default: %(default)s)")
    parser.add_argument("--once", action="store_true", help="probe (and bench) and publish once, then exit")
    parser.add_argument("--bench", choices=BENCH_CHOICES, default=d.bench,
                        help="throughput bench and health gate: auto (default) benches the cards with their "
                             "vendor's backend when available, else skips")
    parser.add_argument("--bench-budget", type=float, default=d.bench_budget_seconds, metavar="SECONDS",
                        help="seconds per measurement and card (default: %(default)s)")
    parser.add_argument("--bench-interval", type=float, default=d.bench_interval_seconds, metavar="SECONDS",
                        help="seconds between scheduled re-tests of idle cards; 0: only at start and on request "
                             "(default: %(default)s)")
    parser.add_argument("--bench-timeout", type=float, default=d.bench_timeout_seconds, metavar="SECONDS",
                        help="limit of one card's bench process; then it is killed (default: %(default)s)")
    parser.add_argument("--busy-memory-fraction", type=float, default=d.busy_memory_fraction, metavar="F",
                        help="a card using more of its memory runs a job and is not benched (default: %(default)s)")
    parser.add_argument("--golden-file", default=d.golden_file, metavar="FILE",
                        help="YAML entries replacing or adding to the built-in golden table")
    parser.add_argument("--golden-fraction", type=float, default=d.golden_fraction, metavar="F",
                        help="Degraded below this fraction of the golden figure (default: %(default)s)")
    parser.add_argument("--median-fraction", type=float, default=d.median_fraction, metavar="F",
                        help="Degraded below this fraction of the node's median card (default: %(default)s)")
    parser.add_argument("--place-degraded", action="store_true",
                        help="count Degraded cards as usable (default: they are not placed)")
    parser.add_argument("--lib-path", default=None, metavar="DIRS",
                        help="colon-separated directories with the vendor libraries (NVML, DCMI, ROCm SMI, ACL)")
    parser.add_argument("--request-timeout", type=float, default=d.request_timeout_seconds, metavar="SECONDS",
                        help="timeout of each API request (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def settings_from(args: argparse.Namespace) -> AgentSettings:
    """AgentSettings from parsed flags; ValueError names the flag at fault."""
    return AgentSettings(
        node_name=args.node_name, sysfs_root=args.sysfs_root, interval_seconds=args.interval,
        once=args.once, bench=args.bench, bench_budget_seconds=args.bench_budget,
        bench_interval_seconds=args.bench_interval, bench_timeout_seconds=args.bench_timeout,
        busy_memory_fraction=args.busy_memory_fraction, golden_file=args.golden_file,
        golden_fraction=args.golden_fraction, median_fraction=args.median_fraction,
        place_degraded=args.place_degraded, lib_path=args.lib_path,
        request_timeout_seconds=args.request_timeout,
    )
