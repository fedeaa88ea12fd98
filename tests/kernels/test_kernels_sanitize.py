"""The C probe and kernels under AddressSanitizer + UBSan, against every fixture and fake library."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from kernels_support import BUILD_ROOT, FIXTURES, cmake_build, fixture_bdfs

SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=99",
    # libgomp keeps its thread pool alive at exit; that is not our leak.
    "LSAN_OPTIONS": "suppressions=" + str(Path(__file__).resolve().parent / "lsan.supp"),
}


@pytest.fixture(scope="module")
def asan_cli() -> Path:
    build = BUILD_ROOT / "kernels-asan"
    cmake_build(
        build, "-DSUANLI_SANITIZE=ON", "-DSUANLI_CUDA=OFF", "-DSUANLI_HIP=OFF", "-DCMAKE_BUILD_TYPE=Debug"
    )
    return build / "suanli-probe"


def _cases(libs: dict[str, Path]) -> list[tuple[list[str], dict[str, str]]]:
    cases: list[tuple[list[str], dict[str, str]]] = []
    drivers = {"h100-8": "0x10de", "ascend910b-8": "0x19e5", "dcu-8": "0x1d94", "cpu-only": "0x10de"}
    for tree, vendor in drivers.items():
        bdfs = fixture_bdfs(tree, vendor)
        for variant in ("healthy", "init_fails", "omit_required", "broken", "empty"):
            env = {
                "SUANLI_FAKE_BDFS": ",".join(bdfs),
                "SUANLI_FAKE_FAIL_BDF": bdfs[1] if len(bdfs) > 1 else "",
            }
            cases.append((["--sysfs-root", str(FIXTURES / tree), "--lib-path", str(libs[variant])], env))
    cases.append((["--sysfs-root", "/nonexistent"], {}))
    cases.append((["--bench", "cpu", "--budget", "0.05", "--array-mib", "2"], {}))
    cases.append(
        (
            ["--bench", "ascend", "--budget", "0.05", "--array-mib", "1", "--lib-path", str(libs["healthy"])],
            {},
        )
    )
    cases.append((["--bench", "ascend", "--lib-path", str(libs["init_fails"])], {}))
    cases.append((["--bench", "cuda"], {}))
    return cases


def test_probe_and_kernels_are_sanitizer_clean(asan_cli: Path, fake_libs: dict[str, Path]) -> None:
    for args, extra in _cases(fake_libs):
        env = {**os.environ, **SAN_ENV, **extra, "OMP_NUM_THREADS": "2"}
        p = subprocess.run(
            [str(asan_cli), *args, "--json"], capture_output=True, text=True, env=env, timeout=120
        )
        assert p.returncode in (0, 1), f"{args}: rc={p.returncode}\n{p.stderr[-4000:]}"
        assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, f"{args}:\n{p.stderr[-4000:]}"
        assert p.stdout.startswith("{"), args
