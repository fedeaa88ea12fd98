"""Real compile checks of the CUDA and HIP backends (no GPU needed), and their no-device behaviour.

The compilers come from kernels/tools/install-gpu-toolchains.sh. Where they are absent the
checks skip, unless SUANLI_REQUIRE_GPU_TOOLCHAINS=1 (CI), where absence is a failure.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from kernels_support import BUILD_ROOT, cmake_build
from schema_check import validate

REQUIRED = os.environ.get("SUANLI_REQUIRE_GPU_TOOLCHAINS") == "1"


def _pip_cuda_bin() -> Path | None:
    for nvcc in sorted(
        glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cu*", "bin", "nvcc"))
    ):
        return Path(nvcc).parent
    return None


def _need(tool: str, found: object) -> None:
    if found:
        return
    message = f"{tool} not found: run kernels/tools/install-gpu-toolchains.sh"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def _bench(cli: Path, backend: str) -> tuple[int, dict]:
    p = subprocess.run(
        [str(cli), "--bench", backend, "--json", "--budget", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return p.returncode, json.loads(p.stdout)


def _check_no_device_or_verified(rc: int, out: dict, label: str) -> None:
    assert validate(out) == []
    if out["status"] == "ok":  # run on a machine with the accelerator
        assert rc == 0
        for d in out["devices"]:
            assert d["verified"] and d["copy_gbs"] > 0 and d["triad_gbs"] > 0 and d["fma_gflops"] > 0
    else:
        assert rc == 1
        assert out["error"].startswith(f"no usable {label} device"), out["error"]


def test_cuda_backend_compiles_with_sm80_sm90_sass() -> None:
    cuda_bin = _pip_cuda_bin()
    nvcc = shutil.which("nvcc") or (cuda_bin and str(cuda_bin / "nvcc"))
    _need("nvcc", nvcc)
    build = BUILD_ROOT / "kernels-cuda-check"
    cmake_build(build, "-DSUANLI_CUDA=ON", "-DSUANLI_HIP=OFF", f"-DCMAKE_CUDA_COMPILER={nvcc}")
    module = build / "libsuanli_cuda.so"
    assert module.is_file()
    cuobjdump = Path(str(nvcc)).parent / "cuobjdump"
    _need("cuobjdump", cuobjdump.is_file())
    elf = subprocess.run(
        [str(cuobjdump), "--list-elf", str(module)], capture_output=True, text=True, check=True
    ).stdout
    assert "sm_80.cubin" in elf and "sm_90.cubin" in elf, elf
    # Only the driver may be needed at run time: cudart is linked statically.
    ldd = subprocess.run(["ldd", str(module)], capture_output=True, text=True, check=True).stdout
    assert "libcudart" not in ldd
    rc, out = _bench(build / "suanli-probe", "cuda")
    _check_no_device_or_verified(rc, out, "CUDA")


def test_hip_backend_compiles_under_cxx17_for_every_hygon_target_the_toolchain_knows() -> None:
    hipcc = shutil.which("hipcc")
    _need("hipcc", hipcc)
    build = BUILD_ROOT / "kernels-hip-check"
    cmake_build(build, "-DSUANLI_CUDA=OFF", "-DSUANLI_HIP=ON")
    module = build / "libsuanli_hip.so"
    assert module.is_file()
    # The build passes -std=c++17 -Werror (the default standard of clang >= 16, where hipError_t is
    # [[nodiscard]]): that it built at all is the check. Which Hygon targets it has depends on the
    # toolchain (Debian's clang 15: gfx906 only; DTK: gfx906, gfx926, gfx928); CMake records them.
    cache = (build / "CMakeCache.txt").read_text()
    built = next(line.split("=", 1)[1] for line in cache.splitlines()
                 if line.startswith("SUANLI_HIP_BUILT_ARCHS:")).split(";")
    assert "gfx906" in built, built
    blob = module.read_bytes()
    # The offload bundle names its targets; a build that silently dropped one has no code for that DCU.
    for arch in built:
        assert f"amdgcn-amd-amdhsa--{arch}".encode() in blob, arch
    rc, out = _bench(build / "suanli-probe", "hip")
    _check_no_device_or_verified(rc, out, "HIP")
