"""The suanli-probe commands (C binary and Python entry point) and their JSON contract."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kernels_support import FIXTURES, Kernels
from schema_check import validate

from suanli import probe as kprobe


def run(cli: Path, *args: str, env_libs: Path | None = None) -> tuple[int, dict, str]:
    env = {"PATH": "/usr/bin:/bin"}
    if env_libs is not None:
        env["SUANLI_VENDOR_LIB_PATH"] = str(env_libs)
    p = subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else {}, p.stderr


def test_probe_command(kernels: Kernels, fake_libs: dict[str, Path]) -> None:
    rc, out, _ = run(
        kernels.cli, "--sysfs-root", str(FIXTURES / "h100-8"), "--json", env_libs=fake_libs["empty"]
    )
    assert rc == 0 and validate(out) == []
    assert len(out["devices"]) == 8


def test_bench_cpu_command_contract(kernels: Kernels) -> None:
    # The exact command line the node agent and the docs use, with the default budget.
    rc, out, _ = run(kernels.cli, "--bench", "cpu", "--json")
    assert rc == 0 and validate(out) == []
    assert out["copy_gbs"] > 0 and out["triad_gbs"] > 0 and out["fma_gflops"] > 0


@pytest.mark.parametrize("backend", ["cuda", "hip", "ascend"])
def test_bench_without_device_is_an_error_report(
    kernels: Kernels, fake_libs: dict[str, Path], backend: str
) -> None:
    rc, out, _ = run(
        kernels.cli, "--bench", backend, "--json", "--budget", "0.1", env_libs=fake_libs["empty"]
    )
    if out.get("status") == "ok":  # a machine with that accelerator and a backend built for it
        assert rc == 0 and all(d["verified"] for d in out["devices"])
        return
    assert rc == 1 and validate(out) == []
    assert out["status"] == "error" and out["copy_gbs"] is None
    assert out["error"]


def test_unknown_backend_and_bad_numbers(kernels: Kernels) -> None:
    rc, out, _ = run(kernels.cli, "--bench", "tpu", "--json")
    assert rc == 1 and "unknown backend 'tpu'" in out["error"]
    rc, _, err = run(kernels.cli, "--bench", "cpu", "--budget", "fast")
    assert rc == 2 and "--budget needs a number" in err


def test_python_entry_point(capsys: pytest.CaptureFixture[str], fake_libs: dict[str, Path]) -> None:
    rc = kprobe.main(
        ["--sysfs-root", str(FIXTURES / "dcu-8"), "--lib-path", str(fake_libs["empty"]), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(out["devices"]) == 8
    rc = kprobe.main(["--sysfs-root", str(FIXTURES / "dcu-8"), "--lib-path", str(fake_libs["empty"])])
    assert rc == 0 and "8 accelerator(s)" in capsys.readouterr().out
