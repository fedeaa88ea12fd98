"""Benches in child processes: one per device, all at once, each with a time limit (as DCGM runs its diags).

A GPU bench inside the agent would keep a CUDA/HIP context (and its memory) on every card for the
agent's lifetime, block EXCLUSIVE_PROCESS pods, and take the agent down with it when the runtime
aborts on a GPU fault. A child process per device releases everything when it exits (the kernels
also reset the device), and whatever it does (crash, hang) the agent records it and carries on.

The child is ``python -m suanli.probe --bench <backend> --device <i> --json``; its reports are merged
into one report of the same shape (``kernels/probe.schema.json``), with an ``outcome`` per device.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .throughput import Outcome, device_outcome

log = logging.getLogger(__name__)

CHILD_ENV = {
    # CUDA numbers devices fastest-first by default; bus order makes index i the i-th card.
    "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    # Pin OpenMP threads (CPU bench): unbound threads wander across sockets and measure remote memory.
    # libgomp reads these when it loads, which is why they are set for a fresh process.
    "OMP_PROC_BIND": "spread",
    "OMP_PLACES": "cores",
}
"""Set in each child unless the agent's own environment already sets them."""


@dataclass(frozen=True)
class BenchPlan:
    """What to run: a backend on some devices, with a budget per measurement and a limit per process."""

    backend: str
    devices: Sequence[int] | None
    """Runtime device indices, one child each; None runs one child over every device (the CPU bench)."""
    budget_s: float = 2.0
    timeout_s: float = 120.0
    """Wall-clock limit of one child, start-up included; then it is killed and reported as hung."""
    lib_path: str | None = None
    inject_fault: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)


def child_command(plan: BenchPlan, device: int | None) -> list[str]:
    """The command line of one child (the Python entry point: it finds the library the agent uses)."""
    cmd = [sys.executable, "-m", "suanli.probe", "--bench", plan.backend, "--json", "--budget", f"{plan.budget_s:g}"]
    if device is not None:
        cmd += ["--device", str(device)]
    if plan.lib_path:
        cmd += ["--lib-path", plan.lib_path]
    if plan.inject_fault:
        cmd.append("--inject-fault")
    return cmd


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _failed(device: int, outcome: Outcome, message: str) -> dict[str, Any]:
    return {"index": device, "name": None, "status": "error", "error": message, "copy_gbs": None,
            "triad_gbs": None, "fma_gflops": None, "verified": False, "stream_mismatches": 0,
            "array_bytes": 0, "stream_reps": 0, "outcome": outcome.value}


def _collect(
    proc: subprocess.Popen[str], device: int | None, plan: BenchPlan, stdout: str, timed_out: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The child's report (None when it gave none) and its device entries, each with an outcome."""
    index = device if device is not None else 0
    if timed_out:
        msg = f"bench did not finish within {plan.timeout_s:g}s and was killed (a hung kernel or runtime)"
        return None, [_failed(index, Outcome.TIMED_OUT, msg)]
    try:
        report: dict[str, Any] = json.loads(stdout)
    except (json.JSONDecodeError, ValueError):
        report = {}
    rc = proc.returncode
    if rc < 0 or report.get("kind") != "bench":
        why = f"killed by {_signal_name(rc)}" if rc < 0 else f"exit status {rc} without a report"
        return None, [_failed(index, Outcome.CRASHED, f"bench process {why}")]
    entries = [dict(d) for d in report.get("devices") or []]
    if device is not None:
        entries = [d for d in entries if d.get("index") == device]
        if not entries:
            # The runtime failed before reaching the device (no driver, device out of range).
            entries = [_failed(device, Outcome.ERROR, str(report.get("error") or "no result"))]
    for d in entries:
        d["outcome"] = device_outcome(d).value
    return report, entries


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill the child's whole process group (a runtime may have started helpers of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_plan(plan: BenchPlan) -> dict[str, Any]:
    """Runs the plan's children concurrently and returns their merged report. Never raises for a child
    that crashes, hangs or prints garbage: that becomes the device's ``outcome`` and ``error``."""
    env = dict(os.environ)
    for key, value in CHILD_ENV.items():
        env.setdefault(key, value)
    env.update(plan.extra_env)
    targets: list[int | None] = list(plan.devices) if plan.devices is not None else [None]

    def one(device: int | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        # Each child is waited for in its own thread, each with the whole limit from its own start.
        proc = subprocess.Popen(
            child_command(plan, device), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=plan.timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            stdout, stderr = proc.communicate()
            timed_out = True
        if stderr.strip():
            log.info("bench %s device %s: %s", plan.backend, device, stderr.strip()[-500:])
        return _collect(proc, device, plan, stdout, timed_out)

    reports: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="bench") as pool:
        for report, found in pool.map(one, targets):
            if report is not None:
                reports.append(report)
            entries.extend(found)
    return merge(plan.backend, reports, entries)


def merge(backend: str, reports: Sequence[dict[str, Any]], entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from the children's: slowest verified device at the top, every device listed."""
    entries = sorted(entries, key=lambda d: int(d["index"]))
    good = [d for d in entries if d["outcome"] == Outcome.OK.value]
    bad = [d for d in entries if d["outcome"] != Outcome.OK.value]

    def slowest(key: str) -> float | None:
        values = [d[key] for d in good if isinstance(d.get(key), int | float)]
        return min(values) if values else None

    counts = [r["device_count"] for r in reports if isinstance(r.get("device_count"), int)]
    error = None
    if bad:
        listed = "; ".join(f"device {d['index']}: {d.get('error') or d['outcome']}" for d in bad)
        error = f"{len(bad)} of {len(entries)} device(s) failed: {listed}"
    merged: dict[str, Any] = {
        "kind": "bench",
        "backend": backend,
        "copy_method": next((r.get("copy_method") for r in reports if r.get("copy_method")), "kernel"),
        "status": "error" if bad or not entries else "ok",
        "error": error if entries else "no device was measured",
        "copy_gbs": slowest("copy_gbs"),
        "triad_gbs": slowest("triad_gbs"),
        "fma_gflops": slowest("fma_gflops"),
        "devices": entries,
    }
    if counts:
        merged["device_count"] = max(counts)
    return merged
