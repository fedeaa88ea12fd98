"""The GPU FMA kernel's closed form, checked on the host: no GPU needed to know the arithmetic is exact.

native/fma_closed_form_check.cc runs k_fma's steps with fmaf over the shared header
(kernels/src/gpu/fma_closed_form.h): each lane must end bit for bit on its start value, and a lane
with any significand bit but the lowest flipped at its first step must still be wrong at the end.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kernels_support import KERNELS

SOURCE = Path(__file__).resolve().parent / "native" / "fma_closed_form_check.cc"


def test_every_lane_ends_on_its_start_and_early_faults_survive(tmp_path: Path) -> None:
    cxx = shutil.which("c++") or shutil.which("g++")
    assert cxx, "a C++ compiler is needed for the FMA check"
    exe = tmp_path / "fma_check"
    # -ffp-contract=off: only the explicit fmaf calls fuse, as on the GPU.
    subprocess.run([cxx, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                    "-I", str(KERNELS / "src"), "-o", str(exe), str(SOURCE)],
                   check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip() == "lanes=1024 bad=0 bits_checked=22528 faults_missed=0"
