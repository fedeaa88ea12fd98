"""Kernel test fixtures: a built library (built here if needed) and compiled fake vendor libraries."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernels_support import FAKE_ENV, FAKES_SRC, VARIANTS, VENDOR_FAKES, Kernels, kernels_library


@pytest.fixture(scope="session", autouse=True)
def kernels() -> Kernels:
    """The library under test: $SUANLI_KERNELS_LIB, else a CPU-only CMake build in build/kernels-test."""
    lib = kernels_library()
    cli = lib.parent / "suanli-probe"
    assert lib.is_file() and cli.is_file(), f"kernels not built at {lib.parent}"
    return Kernels(lib=lib, cli=cli)


@pytest.fixture(scope="session")
def fake_libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Directories of fake vendor libraries, one per variant: healthy, init_fails, omit_required, broken."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the fake vendor libraries"
    root = tmp_path_factory.mktemp("vendor-libs")
    dirs: dict[str, Path] = {}
    for variant, flags in VARIANTS.items():
        d = root / variant
        d.mkdir()
        for src, name in VENDOR_FAKES.values():
            cmd = [cc, "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", *flags]
            subprocess.run([*cmd, "-o", str(d / name), str(FAKES_SRC / src)], check=True)
        dirs[variant] = d
    # A library file that exists but is not a shared object (corrupt install).
    broken = root / "broken"
    broken.mkdir()
    for _, name in VENDOR_FAKES.values():
        (broken / name).write_bytes(b"not an ELF file\n" * 256)
    dirs["broken"] = broken
    dirs["empty"] = root / "empty"
    dirs["empty"].mkdir()
    return dirs


@pytest.fixture
def fake_driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Clean fake-driver environment; tests set SUANLI_FAKE_* through the returned monkeypatch."""
    for var in FAKE_ENV:
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
