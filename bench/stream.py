"""CPU triad bandwidth: our kernel vs a plain STREAM-style loop, side by side in one run.

Both are built with the same compiler and flags (the library reports its own), use
the machine's thread count and arrays of at least 4x the last-level cache, bind their
threads the same way (OMP_PROC_BIND=spread OMP_PLACES=cores, as the agent's bench
processes do), and take the best of N repetitions; rounds alternate between the two so
drift hits both. The FMA rate of the CPU kernel is reported alongside.

    SUANLI_KERNELS_LIB=build/kernels-test/libsuanli_kernels.so \\
        PYTHONPATH=operator python bench/stream.py [--rounds 5] [--reps 10]

Goal: ratio (ours / reference) >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from suanli import probe as kprobe

HERE = Path(__file__).resolve().parent


def build_reference(out: Path) -> list[str]:
    info = kprobe.build_info()
    cmd = [info["c_compiler"], *shlex.split(info["c_flags"]), "-o", str(out), str(HERE / "stream_ref.c")]
    subprocess.run(cmd, check=True)
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; best of each side is kept")
    ap.add_argument("--reps", type=int, default=10, help="timed repetitions per round (STREAM's NTIMES)")
    ap.add_argument("--array-mib", type=int, default=0, help="MiB per array; 0 = 4x last-level cache")
    args = ap.parse_args()
    if "OMP_PROC_BIND" not in os.environ:
        # libgomp reads its binding when it loads: restart with it set, so ours is bound like the reference.
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "OMP_PROC_BIND": "spread", "OMP_PLACES": "cores"})

    threads = os.cpu_count() or 1
    probe = kprobe.bench_cpu(budget_s=0.05, threads=threads)["devices"][0]
    array_bytes = (args.array_mib << 20) or max(4 * probe["last_level_cache_bytes"], 16 << 20)
    n = array_bytes // 8
    with tempfile.TemporaryDirectory() as tmp:
        ref_bin = Path(tmp) / "stream_ref"
        compile_cmd = build_reference(ref_bin)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        ours: list[float] = []
        ref: list[float] = []
        for _ in range(args.rounds):
            r = kprobe.cpu_stream(n, args.reps, threads=threads)
            if r["mismatches"]:
                print(f"our kernel failed verification: {r['mismatches']} wrong elements", file=sys.stderr)
                return 1
            ours.append(r["triad_gbs"])
            out = subprocess.run(
                [str(ref_bin), str(n), str(args.reps + 1)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            ref.append(json.loads(out.stdout)["triad_gbs"])
    result = {
        "threads": threads,
        "array_bytes": n * 8,
        "last_level_cache_bytes": probe["last_level_cache_bytes"],
        "reference_compile": " ".join(compile_cmd[:-3]),
        "ours_triad_gbs": round(max(ours), 2),
        "reference_triad_gbs": round(max(ref), 2),
        "ratio": round(max(ours) / max(ref), 3),
        "rounds": {"ours": [round(x, 2) for x in ours], "reference": [round(x, 2) for x in ref]},
        "binding": {k: os.environ[k] for k in ("OMP_PROC_BIND", "OMP_PLACES")},
        "fma_gflops_fp64": round(kprobe.bench_cpu(budget_s=1.0, threads=threads)["fma_gflops"] or 0.0, 1),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["ratio"] >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
