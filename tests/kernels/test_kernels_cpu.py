"""CPU stream and FMA kernels: exact results, verified, and withheld when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from schema_check import validate

from suanli import probe as kprobe


def reference_stream(n: int, reps: int) -> tuple[list[float], list[float], list[float]]:
    """STREAM copy/triad in plain Python, element by element (reps timed + 1 warm-up)."""
    a, b, c = [1.0] * n, [2.0] * n, [0.0] * n
    for _ in range(reps + 1):
        c = a[:]
        a = [b[i] + 0.5 * c[i] for i in range(n)]
    return a, b, c


@pytest.mark.parametrize("threads", [1, 2])
def test_stream_matches_python_reference(threads: int) -> None:
    n, reps = 10_007, 6  # odd length: exercises the vector loops' remainders
    got = kprobe.cpu_stream(n, reps, threads=threads)
    a, b, c = reference_stream(n, reps)
    assert got["mismatches"] == 0
    assert got["checksum"] == pytest.approx(sum(a) + sum(b) + sum(c), rel=1e-12)
    assert got["reps"] == reps
    assert got["copy_gbs"] > 0 and got["triad_gbs"] > 0


def test_stream_detects_one_corrupted_element() -> None:
    got = kprobe.cpu_stream(4096, 3, inject_fault=True)
    assert got["mismatches"] == 1


def test_bench_cpu_reports_verified_numbers() -> None:
    r = kprobe.bench_cpu(budget_s=0.2, array_bytes=8 << 20)
    assert validate(r) == []
    assert r["status"] == "ok", r["error"]
    for key in ("copy_gbs", "triad_gbs", "fma_gflops"):
        assert r[key] > 0
    dev = r["devices"][0]
    assert dev["verified"] and dev["stream_mismatches"] == 0 and dev["fma_mismatches"] == 0
    assert dev["fma_dtype"] == "fp64"
    assert dev["array_bytes"] == 8 << 20


def test_bench_cpu_withholds_numbers_that_fail_verification() -> None:
    r = kprobe.bench("cpu", kprobe.BenchOptions(budget_s=0.1, array_bytes=1 << 20, inject_fault=True))
    assert validate(r) == []
    assert r["status"] == "error" and "verification failed" in r["error"]
    assert r["copy_gbs"] is None and r["triad_gbs"] is None and r["fma_gflops"] is None
    assert r["devices"][0]["verified"] is False


def test_fma_fault_at_the_first_step_is_still_there_at_the_end() -> None:
    """The recurrence never contracts: a lane perturbed before its first FMA ends off its closed form.
    (The old x = x*m + a reached a fixed point and would have erased it.)"""
    r = kprobe.bench("cpu", kprobe.BenchOptions(budget_s=0.2, array_bytes=1 << 20, inject_fault=True))
    dev = r["devices"][0]
    assert dev["fma_mismatches"] == 1, "exactly the perturbed lane, after the whole run"
    assert dev["fma_reps"] >= 3


def test_stream_rule_sizes_arrays_from_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUANLI_CGROUP_ROOT", str(tmp_path))  # no limits: the rule alone sizes the arrays
    r = kprobe.bench_cpu(budget_s=0.05)
    dev = r["devices"][0]
    assert dev["array_bytes"] >= 4 * dev["last_level_cache_bytes"]


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("tpu", kprobe.BenchOptions(), "backend='tpu'"),
        ("cpu", kprobe.BenchOptions(budget_s=0), "budget_s=0"),
        ("cpu", kprobe.BenchOptions(array_bytes=-1), "array_bytes"),
    ],
)
def test_bad_options_name_the_field(backend: str, options: kprobe.BenchOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        kprobe.bench(backend, options)


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    "files",
    [
        # cgroup v2: a one-CPU quota, 256 MiB limit with 150 MB in use.
        {"cpu.max": "100000 100000", "memory.max": "268435456", "memory.current": "150000000"},
        # cgroup v1, the same limits.
        {"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000",
         "memory/memory.limit_in_bytes": "268435456", "memory/memory.usage_in_bytes": "150000000"},
    ],
    ids=["v2", "v1"],
)
def test_cpu_bench_fits_the_container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, str]) -> None:
    """Arrays in half of what the memory limit leaves (an OOM kill would take the agent with it),
    threads no more than the CPU quota allows."""
    monkeypatch.setenv("SUANLI_CGROUP_ROOT", str(cgroup(tmp_path, files)))
    r = kprobe.bench_cpu(budget_s=0.05)
    assert validate(r) == [] and r["status"] == "ok", r["error"]
    dev = r["devices"][0]
    left = 268435456 - 150000000
    assert 3 * dev["array_bytes"] <= left // 2 and dev["array_bytes"] >= (left // 6) - 8
    assert dev["array_capped_by"] == "cgroup memory limit"
    assert dev["threads"] == 1 and dev["threads_capped_by"] == "cgroup cpu quota"


def test_unlimited_cgroup_caps_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUANLI_CGROUP_ROOT", str(cgroup(tmp_path, {"cpu.max": "max 100000", "memory.max": "max"})))
    dev = kprobe.bench_cpu(budget_s=0.05, array_bytes=2 << 20)["devices"][0]
    assert dev["array_capped_by"] is None and dev["threads_capped_by"] is None
    assert dev["array_bytes"] == 2 << 20


def test_explicit_threads_win_over_the_quota(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUANLI_CGROUP_ROOT", str(cgroup(tmp_path, {"cpu.max": "100000 100000"})))
    dev = kprobe.bench_cpu(budget_s=0.05, threads=2, array_bytes=1 << 20)["devices"][0]
    assert dev["threads"] == 2 and dev["threads_capped_by"] is None
