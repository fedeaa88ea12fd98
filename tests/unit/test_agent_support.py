"""Shared by the agent tests (unit and integration): the compiled probe and fake vendor libraries.

Reuses tests/kernels' build helpers: the library is $SUANLI_KERNELS_LIB, else the CPU-only CMake build
in build/kernels-test (incremental, so cheap when tests/kernels already built it). The fake vendor
libraries (NVML, DCMI, ROCm SMI, ACL) are compiled from tests/kernels/fakes, one directory per variant.
No tests here.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "sysfs"
sys.path.insert(0, str(REPO / "tests" / "kernels"))

from kernels_support import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    FAKE_ENV,
    FAKES_SRC,
    VARIANTS,
    VENDOR_FAKES,
    build_fake_gpu_backend,
    fixture_bdfs,
    kernels_library,
)

__all__ = ["FAKE_ENV", "FIXTURES", "REPO", "fake_gpu_backend_dir", "fake_vendor_libs", "fixture_bdfs",
           "kernels_library", "subset_tree"]



@cache
def fake_vendor_libs() -> dict[str, Path]:
    """Directories of fake vendor libraries: healthy, init_fails, omit_required, and empty (none at all).

    Built once per test process into a private temporary directory, removed when the process exits.
    """
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the fake vendor libraries"
    root = Path(tempfile.mkdtemp(prefix="suanli-agent-fakes-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    dirs: dict[str, Path] = {}
    for variant, flags in VARIANTS.items():
        d = root / variant
        d.mkdir(parents=True)
        for src, name in VENDOR_FAKES.values():
            cmd = [cc, "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", *flags]
            subprocess.run([*cmd, "-o", str(d / name), str(FAKES_SRC / src)], check=True)
        dirs[variant] = d
    dirs["empty"] = root / "empty"
    dirs["empty"].mkdir()
    return dirs


@cache
def fake_gpu_backend_dir() -> Path:
    """A directory holding the fake GPU backend as libsuanli_cuda.so (set SUANLI_BACKEND_DIR to it):
    the library's real bench path with results the SUANLI_FAKE_GPU_* variables choose."""
    root = Path(tempfile.mkdtemp(prefix="suanli-agent-gpu-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    build_fake_gpu_backend(root, "cuda")
    return root


def subset_tree(tree: str, keep: int, vendor_id: str, dest: Path) -> Path:
    """A copy of a fixture sysfs tree that shows only its first `keep` accelerators (a smaller node)."""
    out = dest / f"{tree}-{keep}"
    shutil.copytree(FIXTURES / tree, out, symlinks=True)
    for bdf in fixture_bdfs(tree, vendor_id)[keep:]:
        (out / "bus" / "pci" / "devices" / bdf).unlink()
    return out


@pytest.fixture(scope="module")
def libs() -> dict[str, Path]:
    """The probe library built and the fake vendor libraries compiled."""
    kernels_library()
    return fake_vendor_libs()


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A monkeypatch with every fake-driver variable cleared, so one test's fault never leaks."""
    for var in FAKE_ENV:
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
