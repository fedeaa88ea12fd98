"""`make demo`: Suanli placing the sample jobs on a simulated heterogeneous fleet, end to end.

A local control plane (hack/devcluster.py), 80 kwok nodes of Ascend 910B, H100 and Hygon DCU servers in
two regions, other teams' pods already on them, the operator as a real process, then every job in
examples/ submitted one by one. Prints a placement table, writes demo-out/fleet.html (and a PNG when
Debian's chromium is installed), shuts everything down, and exits 1 if the story did not happen: a job
falling back to another vendor, jobs pending with their reason, the rest running to completion.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))

import demo_fleet as fleet  # noqa: E402
import demo_report as report  # noqa: E402
import devcluster  # noqa: E402
from kubernetes import client, config  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402

GROUP, VERSION, PLURAL = "suanli.io", "v1alpha1", "aitrainingjobs"
NAMESPACE = "default"
CLUSTER_DIR = ROOT / ".cache" / "demo-cluster"
DECIDE_TIMEOUT = 30.0
"""Seconds one job may wait for the operator's first decision (placed or pending with a reason)."""


def log(message: str) -> None:
    print(f"[demo {time.monotonic() - T0:5.1f}s] {message}", flush=True)


T0 = time.monotonic()


def wait_for(what: str, ok: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(every)


def _node_ready(node: client.V1Node) -> bool:
    conditions = (node.status and node.status.conditions) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    taints = (node.spec and node.spec.taints) or []
    tainted = any(t.key.startswith("node.kubernetes.io/not-ready") for t in taints)
    return ready and not tainted


def build_fleet(api: client.ApiClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Create the kwok nodes and the other teams' pods on them (readiness is awaited separately)."""
    core = client.CoreV1Api(api)
    nodes, pods = fleet.fleet_nodes(), fleet.other_team_pods()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(core.create_node, nodes))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=fleet.OTHER_TEAMS)))
    for ns in (fleet.OTHER_TEAMS, NAMESPACE):
        # Pod admission needs the namespace's default ServiceAccount, made by the controller-manager.
        wait_for(f"ServiceAccount {ns}/default", partial(_exists, core.read_namespaced_service_account, "default", ns),
                 30)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(partial(core.create_namespaced_pod, fleet.OTHER_TEAMS), pods))
    return nodes, pods


def wait_nodes_ready(api: client.ApiClient, count: int) -> None:
    """Until kwok reports every node Ready and the node controller has lifted the not-ready taint, the
    operator (rightly) treats the nodes as unschedulable."""
    core = client.CoreV1Api(api)
    wait_for("every node Ready and untainted", lambda: sum(_node_ready(n) for n in core.list_node().items) >= count,
             60, 0.25)


def _exists(read: Callable[..., object], *args: str) -> bool:
    try:
        read(*args)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _decided(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    phase = status.get("phase")
    if phase in ("Running", "Succeeded", "Failed"):
        return True
    return phase == "Pending" and status.get("reason") not in (None, "Queued")


def submit_jobs(api: client.ApiClient, examples_dir: Path, run_for: float) -> tuple[list[str], dict[str, float]]:
    """Create each example job once the operator has decided on the previous one; seconds to Running."""
    custom = client.CustomObjectsApi(api)
    examples = fleet.load_examples(examples_dir)
    if not examples:
        raise SystemExit(f"no AITrainingJob in {examples_dir}/*.yaml: pass --examples DIR")
    order = fleet.submission_order(examples)
    to_running: dict[str, float] = {}
    first = time.monotonic()
    for name in order:
        # Every job finishes at about the same moment, so none frees its cards while the rest are placed.
        remaining = max(5.0, run_for - (time.monotonic() - first))
        body = fleet.simulated(examples[name], f"{remaining:.0f}s")
        created = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        job: dict[str, Any] = {}
        deadline = created + DECIDE_TIMEOUT
        while time.monotonic() < deadline:
            job = dict(custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name))  # type: ignore[call-overload]
            if _decided(job):
                break
            time.sleep(0.05)
        status = job.get("status") or {}
        if status.get("phase") in ("Running", "Succeeded"):
            to_running[name] = time.monotonic() - created
        where = (f"{report.accelerator(job)} (candidate {report.candidate_label(job)})" if report.placed(job)
                 else f"{status.get('reason') or 'no decision'}")
        log(f"submitted {name:<22} -> {status.get('phase') or 'no status'}: {where}")
        if not _decided(job):
            # The rest of the story depends on this job's cards: say so now rather than wait out every job.
            log(f"{name} got no decision within {DECIDE_TIMEOUT:.0f}s; not submitting the rest")
            return order[: order.index(name) + 1], to_running
    return order, to_running


def list_jobs(api: client.ApiClient, order: list[str]) -> list[dict[str, Any]]:
    found: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    items: list[dict[str, Any]] = found["items"]
    by_name = {i["metadata"]["name"]: i for i in items}
    return [by_name[n] for n in order if n in by_name]


def check(jobs: list[dict[str, Any]], to_running: Mapping[str, float]) -> list[str]:
    """What the demo promises, as a list of what went wrong (empty when all happened)."""
    problems = []
    by_name = {report.job_name(j): j for j in jobs}
    fallback = by_name.get(fleet.EXPECT_FALLBACK)
    if fallback is None or not report.placed(fallback) or not (fallback["status"].get("candidateIndex") or 0) > 0:
        problems.append(f"{fleet.EXPECT_FALLBACK} did not fall back to a later candidate")
    for name in fleet.EXPECT_PENDING:
        status = (by_name.get(name) or {}).get("status") or {}
        if status.get("phase") != "Pending" or status.get("reason") in (None, "Queued") or not status.get("message"):
            problems.append(f"{name} is not Pending with a reason and message (phase {status.get('phase')})")
    for name, job in by_name.items():
        if name in fleet.EXPECT_PENDING:
            continue
        if name not in to_running:
            problems.append(f"{name} never reached Running")
        elif (job.get("status") or {}).get("phase") != "Succeeded":
            problems.append(f"{name} ended {job['status'].get('phase')}, not Succeeded")
    return problems


def screenshot(html_path: Path, png_path: Path, width: int, height: int) -> bool:
    """A PNG of the page via Debian's headless chromium, when installed; the demo never needs it."""
    browser = shutil.which("chromium")
    if browser is None:
        return False
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--window-size={width},{height}", f"--screenshot={png_path}", html_path.as_uri()]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"chromium screenshot failed, skipping the PNG: {exc}")
        return False
    return png_path.exists()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo-out", help="output folder (default: %(default)s)")
    parser.add_argument("--examples", type=Path, default=ROOT / "examples",
                        help="folder of AITrainingJob YAML files to submit (default: %(default)s)")
    parser.add_argument("--run-for", type=float, default=20,
                        help="seconds after the first submission at which every simulated job finishes")
    parser.add_argument("--timeout", type=float, default=90,
                        help="seconds to wait for jobs to finish after the last submission")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on `kill` too, not only Ctrl-C

    log("starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kwok)")
    cluster = devcluster.up(CLUSTER_DIR, fresh=True)
    operator = OperatorProcess(cluster.kubeconfig, args.out / "operator.log")
    try:
        kubectl = [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
        subprocess.run([*kubectl, "apply", "--server-side", "-f", str(ROOT / "crds")], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                        "crd/aitrainingjobs.suanli.io"], check=True, stdout=subprocess.DEVNULL)
        api = config.new_client_from_config(str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        log(f"control plane up at {cluster.server}; CRDs installed")

        nodes, pods = build_fleet(api)
        log(f"fleet: {len(nodes)} kwok nodes in {len(fleet.LAYOUT)} racks; other teams run {len(pods)} pods on it")

        operator.start()
        log(f"operator running (log: {operator.log})")
        wait_nodes_ready(api, len(nodes))
        log("all nodes Ready")

        order, to_running = submit_jobs(api, args.examples, args.run_for)
        snapshot = list_jobs(api, order)
        log("jobs submitted; waiting for the running ones to finish")
        placed = [report.job_name(j) for j in snapshot if report.job_name(j) in to_running]

        def finished() -> bool:
            return all((j.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                       for j in list_jobs(api, placed))

        try:
            wait_for("placed jobs finish", finished, args.timeout, 0.5)
        except TimeoutError as exc:
            log(str(exc))
        jobs = list_jobs(api, order)

        table = report.placement_table(jobs, to_running)
        print("\n" + table + "\n", flush=True)
        svg = report.fleet_svg(nodes, pods, jobs, title="Suanli: one pool, three accelerator vendors")
        html_path = args.out / "fleet.html"
        html_path.write_text(report.fleet_html(svg, table))
        log(f"wrote {html_path}")
        width, height = report.svg_size(svg)
        png_path = args.out / "fleet.png"
        if screenshot(html_path, png_path, width + 16, height + 16):
            log(f"wrote {png_path}")
        else:
            log("no PNG: install Debian's chromium for one (`apt-get install chromium`)")

        problems = check(jobs, to_running)
        for problem in problems:
            log(f"FAILED: {problem}")
        if problems:
            log(f"operator log tail:\n{operator.tail()}")
        return 1 if problems else 0
    except KeyboardInterrupt:
        log("interrupted; shutting down")
        return 130
    finally:
        operator.stop()
        log("operator stopped")
        devcluster.down(CLUSTER_DIR)
        log("operator and control plane stopped")


if __name__ == "__main__":
    sys.exit(main())
