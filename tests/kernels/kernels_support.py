"""Helpers shared by the kernel tests: paths, CMake builds, fixture facts."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "kernels"
FIXTURES = REPO / "tests" / "fixtures" / "sysfs"
FAKES_SRC = Path(__file__).resolve().parent / "fakes"
BUILD_ROOT = REPO / "build"

FAKE_ENV = (
    "SUANLI_FAKE_BDFS",
    "SUANLI_FAKE_FAIL_BDF",
    "SUANLI_FAKE_ECC_BDF",
    "SUANLI_FAKE_ALARM_BDF",
    "SUANLI_FAKE_CORRUPT",
    "SUANLI_FAKE_NPUS",
    "SUANLI_VENDOR_LIB_PATH",
    "SUANLI_FAKE_GPUS",
    "SUANLI_FAKE_GPU_CORRUPT",
    "SUANLI_FAKE_GPU_SLOW",
    "SUANLI_FAKE_GPU_HANG",
    "SUANLI_FAKE_GPU_CRASH",
    "SUANLI_FAKE_GPU_COPY_GBS",
    "SUANLI_BACKEND_DIR",
)
"""Environment the fake drivers read; cleared around each test so one test's fault never leaks."""

VENDOR_FAKES = {
    "nvml": ("fake_nvml.c", "libnvidia-ml.so.1"),
    "dcmi": ("fake_dcmi.c", "libdcmi.so"),
    "rsmi": ("fake_rsmi.c", "librocm_smi64.so"),
    "acl": ("fake_acl.c", "libascendcl.so"),
}
VARIANTS = {"healthy": [], "init_fails": ["-DFAKE_INIT_FAILS"], "omit_required": ["-DFAKE_OMIT_REQUIRED"]}


def cmake_build(build_dir: Path, *options: str, target: str | None = None) -> None:
    """Configures and builds kernels/ into build_dir (incremental: cheap when up to date)."""
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    if not (build_dir / "CMakeCache.txt").exists():
        subprocess.run(
            ["cmake", "-S", str(KERNELS), "-B", str(build_dir), *gen, *options],
            check=True,
            capture_output=True,
            text=True,
        )
    cmd = ["cmake", "--build", str(build_dir), "--parallel", "2"]
    if target:
        cmd += ["--target", target]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"build of {build_dir} failed:\n{result.stdout}\n{result.stderr}")


def fixture_bdfs(tree: str, vendor_id: str) -> list[str]:
    """Accelerator BDFs in a fixture tree, as the fake drivers should report them."""
    devices = FIXTURES / tree / "bus" / "pci" / "devices"
    accelerator_classes = {"0x03", "0x12"}
    return sorted(
        p.name
        for p in devices.iterdir()
        if (p / "vendor").read_text().strip() == vendor_id
        and (p / "class").read_text().strip()[:4] in accelerator_classes
    )


@dataclass(frozen=True)
class Kernels:
    """A built kernels library and the C command next to it."""

    lib: Path
    cli: Path


@cache
def kernels_library() -> Path:
    """The probe library: $SUANLI_KERNELS_LIB, else a CPU-only CMake build in build/kernels-test, which is
    then exported as SUANLI_KERNELS_LIB for this process and its children."""
    env = os.environ.get("SUANLI_KERNELS_LIB")
    if env:
        lib = Path(env)
    else:
        build = BUILD_ROOT / "kernels-test"
        cmake_build(build, "-DSUANLI_CUDA=OFF", "-DSUANLI_HIP=OFF")
        lib = build / "libsuanli_kernels.so"
        os.environ["SUANLI_KERNELS_LIB"] = str(lib)
    assert lib.is_file(), f"kernels library not built at {lib}"
    return lib


def build_fake_gpu_backend(dest: Path, backend: str = "cuda") -> Path:
    """Compiles fakes/fake_gpu_backend.c as ``libsuanli_<backend>.so`` in dest (point SUANLI_BACKEND_DIR
    at it): the real bench path (library, dlopen, JSON) with results the SUANLI_FAKE_GPU_* variables pick."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the fake GPU backend"
    dest.mkdir(parents=True, exist_ok=True)
    module = dest / f"libsuanli_{backend}.so"
    subprocess.run(
        [cc, "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I", str(KERNELS / "src"),
         "-o", str(module), str(FAKES_SRC / "fake_gpu_backend.c")],
        check=True,
    )
    return module
