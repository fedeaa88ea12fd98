"""Typed Python binding for the compiled probe and throughput kernels (libsuanli_kernels).

The C library does the work and speaks JSON (schema: ``kernels/probe.schema.json``);
this module loads it with ctypes, declares every symbol's signature, and turns the
reports into dataclasses the node agent can use without knowing the JSON.

The library is found in the installed package (``suanli/_lib/``, put there by
``pip install .``) or at ``$SUANLI_KERNELS_LIB`` for source trees.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "BenchOptions",
    "KernelsUnavailableError",
    "Link",
    "LinkDomain",
    "ManagementLibrary",
    "PciDevice",
    "PcieSwitch",
    "ProbeReport",
    "Topology",
    "available_backends",
    "bench",
    "bench_cpu",
    "build_info",
    "library_path",
    "main",
    "probe",
]

LIBRARY_ENV = "SUANLI_KERNELS_LIB"
LIBRARY_NAME = "libsuanli_kernels.so"


class KernelsUnavailableError(RuntimeError):
    """The compiled library is missing or unusable; the message says how to get it."""


class _BenchOptions(ctypes.Structure):
    # Mirrors suanli_bench_options in kernels/include/suanli/kernels.h.
    _fields_ = [
        ("budget_s", ctypes.c_double),
        ("device", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("array_bytes", ctypes.c_uint64),
        ("lib_path", ctypes.c_char_p),
        ("inject_fault", ctypes.c_int32),
    ]


class _StreamResult(ctypes.Structure):
    # Mirrors suanli_stream_result.
    _fields_ = [
        ("copy_gbs", ctypes.c_double),
        ("triad_gbs", ctypes.c_double),
        ("checksum", ctypes.c_double),
        ("mismatches", ctypes.c_uint64),
        ("reps", ctypes.c_int32),
        ("threads", ctypes.c_int32),
    ]


def library_path() -> Path:
    """Where the library is: $SUANLI_KERNELS_LIB, else the copy inside the installed package."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise KernelsUnavailableError(
                f"{LIBRARY_ENV}={env} does not exist; build kernels/ with CMake or unset it"
            )
        return path
    path = Path(__file__).resolve().parent / "_lib" / LIBRARY_NAME
    if not path.is_file():
        raise KernelsUnavailableError(
            f"{path} not found: install the package with `pip install .` (which compiles kernels/), "
            f"or build kernels/ with CMake and set {LIBRARY_ENV} to the built {LIBRARY_NAME}"
        )
    return path


@cache
def _lib() -> ctypes.CDLL:
    path = library_path()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise KernelsUnavailableError(f"cannot load {path}: {exc}") from exc
    # JSON-returning functions hand back malloc'd memory: c_void_p, so ctypes does not
    # copy-and-lose the pointer we must pass to suanli_free.
    lib.suanli_version.argtypes = []
    lib.suanli_version.restype = ctypes.c_char_p
    lib.suanli_probe_json.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.suanli_probe_json.restype = ctypes.c_void_p
    lib.suanli_bench_json.argtypes = [ctypes.c_char_p, ctypes.POINTER(_BenchOptions)]
    lib.suanli_bench_json.restype = ctypes.c_void_p
    lib.suanli_build_info_json.argtypes = []
    lib.suanli_build_info_json.restype = ctypes.c_void_p
    lib.suanli_cpu_stream.argtypes = [
        ctypes.c_uint64,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.POINTER(_StreamResult),
    ]
    lib.suanli_cpu_stream.restype = ctypes.c_int
    lib.suanli_free.argtypes = [ctypes.c_void_p]
    lib.suanli_free.restype = None
    return lib


def _take_json(ptr: int | None) -> dict[str, Any]:
    if not ptr:
        raise MemoryError("the kernels library could not allocate its report")
    try:
        text = ctypes.string_at(ptr).decode("utf-8", errors="replace")
    finally:
        _lib().suanli_free(ptr)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


# ---- probe report ----


@dataclass(frozen=True)
class Link:
    """One high-speed link from a device: NVLink, HCCS or xGMI."""

    type: str
    peer: str
    """BDF of the peer accelerator or link switch."""
    peer_kind: str
    """"accelerator", "switch" (e.g. NVSwitch) or "unknown"."""
    count: int
    """Parallel links to that peer."""


@dataclass(frozen=True)
class PciDevice:
    """One accelerator as seen in sysfs, enriched by the vendor's management library."""

    bdf: str
    vendor: str
    vendor_id: str
    device_id: str
    pci_class: str
    model: str
    family: str | None
    model_verified: bool
    management_name: str | None
    numa_node: int
    """-1 when the platform does not report one."""
    root_complex: str | None
    pcie_path: tuple[str, ...]
    """Bridges from the root port down to the device (device excluded)."""
    pcie_switch: str | None
    """Upstream port of the nearest PCIe switch; devices sharing it can do P2P without the CPU."""
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    health: str
    """"ok", "degraded", "failed" or "unknown" (no management library)."""
    status: str
    """"ok", "no_management_library" or "error"."""
    status_detail: str | None
    links: tuple[Link, ...]


@dataclass(frozen=True)
class PcieSwitch:
    upstream_port: str
    root_complex: str | None
    devices: tuple[str, ...]


@dataclass(frozen=True)
class LinkDomain:
    """Accelerators joined by direct links or a shared link switch; a gang fits best inside one."""

    type: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    numa_nodes: dict[int, tuple[str, ...]]
    pcie_switches: tuple[PcieSwitch, ...]
    link_domains: tuple[LinkDomain, ...]


@dataclass(frozen=True)
class ManagementLibrary:
    vendor: str
    library: str
    status: str
    """"ok", "missing", "error" or "not_needed" (no device of that vendor)."""
    path: str | None
    detail: str | None


@dataclass(frozen=True)
class ProbeReport:
    schema_version: int
    sysfs_root: str
    versions: dict[str, str | None]
    devices: tuple[PciDevice, ...]
    topology: Topology
    management: tuple[ManagementLibrary, ...]
    errors: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)
    """The library's JSON as parsed, for callers that want fields this class does not model."""


def _device(d: dict[str, Any]) -> PciDevice:
    return PciDevice(
        bdf=d["bdf"],
        vendor=d["vendor"],
        vendor_id=d["vendor_id"],
        device_id=d["device_id"],
        pci_class=d["class"],
        model=d["model"],
        family=d["family"],
        model_verified=d["model_verified"],
        management_name=d["management_name"],
        numa_node=d["numa_node"],
        root_complex=d["root_complex"],
        pcie_path=tuple(d["pcie_path"]),
        pcie_switch=d["pcie_switch"],
        memory_total_bytes=d["memory_total_bytes"],
        memory_used_bytes=d["memory_used_bytes"],
        health=d["health"],
        status=d["status"],
        status_detail=d["status_detail"],
        links=tuple(Link(**link) for link in d["links"]),
    )


def parse_probe(report: dict[str, Any]) -> ProbeReport:
    """Builds a ProbeReport from the library's probe JSON."""
    topo = report["topology"]
    return ProbeReport(
        schema_version=report["schema_version"],
        sysfs_root=report["sysfs_root"],
        versions=dict(report["versions"]),
        devices=tuple(_device(d) for d in report["devices"]),
        topology=Topology(
            numa_nodes={int(k): tuple(v) for k, v in topo["numa_nodes"].items()},
            pcie_switches=tuple(
                PcieSwitch(s["upstream_port"], s["root_complex"], tuple(s["devices"]))
                for s in topo["pcie_switches"]
            ),
            link_domains=tuple(LinkDomain(x["type"], tuple(x["devices"])) for x in topo["link_domains"]),
        ),
        management=tuple(ManagementLibrary(**m) for m in report["management"]),
        errors=tuple(report["errors"]),
        raw=report,
    )


def probe(sysfs_root: str = "/sys", lib_path: str | None = None) -> ProbeReport:
    """Scans the node's accelerators.

    lib_path: colon-separated directories to load vendor management libraries from
    (default: $SUANLI_VENDOR_LIB_PATH, else the vendors' standard locations).
    """
    raw = _take_json(
        _lib().suanli_probe_json(sysfs_root.encode(), lib_path.encode() if lib_path is not None else None)
    )
    return parse_probe(raw)


# ---- throughput ----


@dataclass(frozen=True)
class BenchOptions:
    budget_s: float = 2.0
    """Seconds per measurement (stream, then FMA); more gives steadier numbers."""
    device: int = -1
    """Accelerator index; -1 measures every device (ignored for cpu)."""
    threads: int = 0
    """CPU threads; 0 uses every online CPU."""
    array_bytes: int = 0
    """Bytes per stream array; 0 applies STREAM's rule (at least 4x the last-level cache)."""
    lib_path: str | None = None
    """Directories holding vendor runtimes (Ascend ACL)."""
    inject_fault: bool = False
    """Self-test: corrupt one result so verification must fail. Never set in production."""


_BACKENDS = ("cpu", "cuda", "hip", "ascend")


def bench(backend: str, options: BenchOptions | None = None) -> dict[str, Any]:
    """Runs the throughput kernels on one backend; returns the report dict.

    Keys: status ("ok"/"error"), error, copy_gbs, triad_gbs, fma_gflops (None when not
    measured or not verified) and per-device results under "devices".
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend={backend!r} is not supported: use one of {', '.join(_BACKENDS)}")
    o = options or BenchOptions()
    if not 0 < o.budget_s <= 3600:
        raise ValueError(f"budget_s={o.budget_s} must be in (0, 3600] seconds")
    if o.array_bytes < 0 or o.threads < 0:
        raise ValueError("array_bytes and threads must be >= 0 (0 picks the default)")
    c_opts = _BenchOptions(
        budget_s=o.budget_s,
        device=o.device,
        threads=o.threads,
        array_bytes=o.array_bytes,
        lib_path=o.lib_path.encode() if o.lib_path else None,
        inject_fault=1 if o.inject_fault else 0,
    )
    return _take_json(_lib().suanli_bench_json(backend.encode(), ctypes.byref(c_opts)))


def bench_cpu(budget_s: float = 2.0, *, threads: int = 0, array_bytes: int = 0) -> dict[str, Any]:
    """CPU memory bandwidth (copy, triad; GB/s) and FP64 FMA GFLOPS, verified."""
    return bench("cpu", BenchOptions(budget_s=budget_s, threads=threads, array_bytes=array_bytes))


def cpu_stream(n: int, reps: int, threads: int = 0, inject_fault: bool = False) -> dict[str, Any]:
    """Raw copy/triad over n doubles per array, for tests and the benchmark script."""
    if n <= 0 or reps <= 0:
        raise ValueError(f"n={n} and reps={reps} must be positive")
    out = _StreamResult()
    if _lib().suanli_cpu_stream(n, reps, threads, 1 if inject_fault else 0, ctypes.byref(out)) != 0:
        raise MemoryError(f"cannot allocate 3 arrays of {n} doubles")
    return {
        "copy_gbs": out.copy_gbs,
        "triad_gbs": out.triad_gbs,
        "checksum": out.checksum,
        "mismatches": out.mismatches,
        "reps": out.reps,
        "threads": out.threads,
    }


def available_backends() -> frozenset[str]:
    """Backends that can run here: those built into the library, plus GPU modules present where the
    library loads them from ($SUANLI_BACKEND_DIR, else next to the library)."""
    built = {b for b in str(build_info().get("backends", "cpu")).split(",") if b}
    folder = Path(os.environ.get("SUANLI_BACKEND_DIR") or library_path().parent)
    found = {b for b in ("cuda", "hip") if (folder / f"libsuanli_{b}.so").is_file()}
    return frozenset(built | found | {"cpu", "ascend"})


def build_info() -> dict[str, Any]:
    """Compiler, flags and backends the library was built with."""
    return _take_json(_lib().suanli_build_info_json())


def version() -> str:
    raw: bytes = _lib().suanli_version()
    return raw.decode()


# ---- command line ----


def _summary(report: dict[str, Any]) -> str:
    if report.get("kind") == "bench":
        lines = [
            f"{report['backend']}: {report['status']}" + (f" ({report['error']})" if report["error"] else "")
        ]
        for d in report["devices"]:
            lines.append(
                f"  [{d['index']}] {d.get('name') or ''}: copy {d['copy_gbs']} GB/s, "
                f"triad {d['triad_gbs']} GB/s, fma {d['fma_gflops']} GFLOPS, verified={d['verified']}"
            )
        return "\n".join(lines)
    p = parse_probe(report)
    lines = [f"{len(p.devices)} accelerator(s) under {p.sysfs_root}"]
    for d in p.devices:
        lines.append(
            f"  {d.bdf} {d.model:<18} numa={d.numa_node:<2} switch={d.pcie_switch or '-':<12} "
            f"health={d.health:<8} status={d.status}" + (f" ({d.status_detail})" if d.status_detail else "")
        )
    lines += [f"  {m.library}: {m.status}" + (f" ({m.detail})" if m.detail else "") for m in p.management]
    lines += [f"  error: {e}" for e in p.errors]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The ``suanli-probe`` command: probe (default) or ``--bench BACKEND``; JSON with --json."""
    ap = argparse.ArgumentParser(prog="suanli-probe", description=__doc__.splitlines()[0])
    ap.add_argument("--sysfs-root", default="/sys", help="sysfs mount to scan (default /sys)")
    ap.add_argument("--bench", choices=_BACKENDS, help="run throughput kernels instead of probing")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per measurement (default 2)")
    ap.add_argument("--device", type=int, default=-1, help="accelerator index, -1 for all")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads, 0 for all")
    ap.add_argument("--array-mib", type=int, default=0, help="MiB per stream array, 0 for STREAM's rule")
    ap.add_argument("--lib-path", help="colon-separated directories with vendor libraries")
    ap.add_argument("--json", action="store_true", help="print the JSON report (default: a text summary)")
    ap.add_argument("--inject-fault", action="store_true",
                    help="self-test: corrupt one result so verification must fail (never in production)")
    ap.add_argument("--build-info", action="store_true", help="print how the library was built")
    args = ap.parse_args(argv)
    try:
        if args.build_info:
            report = build_info()
        elif args.bench:
            report = bench(
                args.bench,
                BenchOptions(
                    budget_s=args.budget,
                    device=args.device,
                    threads=args.threads,
                    array_bytes=args.array_mib << 20,
                    lib_path=args.lib_path,
                    inject_fault=args.inject_fault,
                ),
            )
        else:
            report = probe(args.sysfs_root, args.lib_path).raw
    except (KernelsUnavailableError, ValueError) as exc:
        print(f"suanli-probe: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json or args.build_info else _summary(report))
    return 1 if report.get("kind") == "bench" and report["status"] != "ok" else 0


if __name__ == "__main__":
    sys.exit(main())
