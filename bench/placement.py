"""Placement benchmark: decision time, memory and quality of the gang planner on a generated fleet.

    python bench/placement.py --nodes 10000 --gang 512 --json     # one case, one JSON object
    python bench/placement.py                                     # the whole matrix as a Markdown table
    git show HEAD~1:operator/suanli/placement/planner.py > /tmp/old_planner.py
    python bench/placement.py --baseline /tmp/old_planner.py       # old vs this planner, interleaved

The fleet (bench/fleet.py) is a third each Ascend 910B x8, H100 x8 and Hygon K100-AI x8, 16 nodes per rack,
8 racks per zone, zones split over 2 regions, about 60 % of cards held by other pods.  Times are wall
clock per call on this machine; compare rows of one run, not runs on different machines.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from typing import Any

sys.path[:0] = [
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "operator"),
    os.path.dirname(os.path.abspath(__file__)),
]

from fleet import generate_fleet, pod_dict  # noqa: E402
from suanli.inventory import Inventory, NodeState  # noqa: E402
from suanli.placement import Candidate, GangRequest, Placement, plan  # noqa: E402
from suanli.topology import Level  # noqa: E402

POOLS = {
    "huawei": ("Ascend910B", "huawei.com/Ascend910"),
    "nvidia": ("H100", "nvidia.com/gpu"),
    "hygon": ("DCU-K100-AI", "hygon.com/hcu"),
}


def load(nodes: int, seed: int) -> tuple[Inventory, float, list[dict[str, Any]]]:
    fleet = generate_fleet(nodes, seed=seed)
    inventory = Inventory()
    start = time.perf_counter()
    for item in fleet.nodes:
        inventory.upsert_node(item)
    for item in fleet.pods:
        inventory.upsert_pod(item)
    elapsed = time.perf_counter() - start
    return inventory, elapsed / (len(fleet.nodes) + len(fleet.pods)), fleet.nodes


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def event_times(inventory: Inventory, nodes: list[dict[str, Any]], count: int) -> dict[str, float]:
    """Per-event cost at full size: bind/finish pods, node heartbeats and node relabels."""
    pod_us: list[float] = []
    node_us: list[float] = []
    beat_us: list[float] = []
    last_sent = {item["metadata"]["name"]: item for item in nodes}
    for i in range(count):
        item = last_sent[nodes[(i * 7919) % len(nodes)]["metadata"]["name"]]
        name = item["metadata"]["name"]
        resource_name = next(k for k in item["status"]["allocatable"] if "/" in k and k != "pods")
        bound = pod_dict("bench", f"ev-{i}", name, resource_name, 1)
        start = time.perf_counter()
        inventory.upsert_pod(bound)
        pod_us.append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        inventory.remove_pod("bench", f"ev-{i}")
        pod_us.append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        inventory.upsert_node(item)  # unchanged: a kubelet heartbeat
        beat_us.append((time.perf_counter() - start) * 1e6)
        labels = {**item["metadata"]["labels"], "bench/tick": str(i)}
        relabelled = {**item, "metadata": {**item["metadata"], "labels": labels}}
        start = time.perf_counter()
        inventory.upsert_node(relabelled)  # changed: full discovery and recompute
        last_sent[name] = relabelled
        node_us.append((time.perf_counter() - start) * 1e6)
    return {
        "pod_event_p50_us": statistics.median(pod_us),
        "pod_event_p99_us": percentile(pod_us, 0.99),
        "node_event_p50_us": statistics.median(node_us),
        "node_event_p99_us": percentile(node_us, 0.99),
        "heartbeat_p50_us": statistics.median(beat_us),
        "heartbeat_p99_us": percentile(beat_us, 0.99),
    }


def lower_bounds(inventory: Inventory, vendor: str, per_replica: int, replicas: int) -> tuple[int, int, int]:
    """Fewest racks, zones and nodes any placement could use (each ignoring the other levels)."""
    model = POOLS[vendor][0]
    rack_room: dict[Any, int] = defaultdict(int)
    zone_room: dict[Any, int] = defaultdict(int)
    node_room: dict[Any, int] = {}
    for state in inventory.pool(vendor, model).values():
        fit = _room(state, per_replica)
        rack_room[state.node.rack_id] += fit
        zone_room[state.node.zone_id] += fit
        node_room[state.node.name] = fit

    def fewest(rooms: dict[Any, int]) -> int:
        total = 0
        for i, room in enumerate(sorted(rooms.values(), reverse=True), 1):
            total += room
            if total >= replicas:
                return i
        return 0

    return fewest(rack_room), fewest(zone_room), fewest(node_room)


def _room(state: NodeState, per_replica: int) -> int:
    if not state.node.schedulable:
        return 0
    if per_replica == state.node.cards:
        return int(state.free_cards == per_replica)
    return sum(f // per_replica for f in state.free)


def run_case(inventory: Inventory, vendor: str, replicas: int, per_replica: int, runs: int) -> dict[str, Any]:
    model = POOLS[vendor][0]
    request = GangRequest(
        key="bench/gang",
        replicas=replicas,
        min_replicas=replicas,
        accelerators_per_replica=per_replica,
        candidates=(Candidate(vendor, model),),
        cpu_millis=4000 * per_replica,
        memory_bytes=32 * 2**30 * per_replica,
    )
    times: list[float] = []
    outcome = plan(inventory, request)  # warm caches the way a running operator would have them
    gc.collect()
    for _ in range(runs):
        start = time.perf_counter()
        outcome = plan(inventory, request)
        times.append((time.perf_counter() - start) * 1000)
    tracemalloc.start()
    plan(inventory, request)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    racks, zones, nodes = lower_bounds(inventory, vendor, per_replica, replicas)
    result: dict[str, Any] = {
        "nodes": len(inventory),
        "vendor": vendor,
        "model": model,
        "gang": replicas,
        "per_replica": per_replica,
        "placed": isinstance(outcome, Placement),
        "p50_ms": statistics.median(times),
        "p99_ms": percentile(times, 0.99),
        "peak_mib": peak / 2**20,
        "lower_bound_racks": racks,
        "lower_bound_zones": zones,
        "lower_bound_nodes": nodes,
    }
    if isinstance(outcome, Placement):
        result.update(
            span_nodes=outcome.span[Level.NODE],
            span_racks=outcome.span[Level.RACK],
            span_zones=outcome.span[Level.ZONE],
            span_regions=outcome.span[Level.REGION],
            level=outcome.level.label if outcome.level is not None else "cluster",
        )
    else:
        result.update(span_nodes=None, span_racks=None, span_zones=None, why=outcome.summary)
    return result


def compare(baseline: str, sizes: list[int], gangs: list[int], vendor: str, runs: int, seed: int) -> None:
    """Median plan time of another planner.py (e.g. `git show REV:operator/suanli/placement/planner.py`)
    against this one, calls interleaved in one process on one inventory, so load on a shared machine hits
    both alike; and the nodes each placement uses."""
    spec = importlib.util.spec_from_file_location("suanli.placement.planner_baseline", baseline)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline {baseline}: not a Python file")
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # dataclasses look their module up while the class is built
    spec.loader.exec_module(old)
    print("| nodes | gang | cards/replica | baseline p50 ms | this p50 ms | ratio | baseline nodes | this nodes |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        inventory, _, _ = load(size, seed)
        for gang in gangs:
            for per_replica in (8, 4, 2, 1):
                request = GangRequest(
                    key="bench/gang", replicas=gang, min_replicas=gang, accelerators_per_replica=per_replica,
                    candidates=(Candidate(vendor, POOLS[vendor][0]),), cpu_millis=4000 * per_replica,
                    memory_bytes=32 * 2**30 * per_replica,
                )
                times: dict[str, list[float]] = {"old": [], "new": []}
                spans = {}
                for _ in range(runs):
                    for name, planner in (("old", old.plan), ("new", plan)):
                        start = time.perf_counter()
                        outcome = planner(inventory, request)
                        times[name].append((time.perf_counter() - start) * 1000)
                        spans[name] = outcome.span[Level.NODE] if isinstance(outcome, Placement) else "-"
                before, after = statistics.median(times["old"]), statistics.median(times["new"])
                print(f"| {size} | {gang} | {per_replica} | {before:.2f} | {after:.2f} | {after / before:.2f} "
                      f"| {spans['old']} | {spans['new']} |", flush=True)


def _level(name: str) -> Any:
    from suanli.topology import Level

    return Level[name]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, help="fleet size (default: the matrix 1000 and 10000)")
    parser.add_argument("--gang", type=int, help="replicas (default: the matrix 1, 8, 64, 512)")
    parser.add_argument("--per-replica", type=int, default=8, help="cards per replica (default 8)")
    parser.add_argument("--vendor", choices=sorted(POOLS), default="huawei")
    parser.add_argument("--runs", type=int, default=50, help="timed plans per case")
    parser.add_argument("--events", type=int, default=2000, help="timed inventory events per fleet")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (needs --nodes and --gang)"
    )
    parser.add_argument("--baseline", metavar="PLANNER_PY",
                        help="time another planner.py against this one, interleaved (see compare())")
    args = parser.parse_args()

    if args.baseline:
        compare(args.baseline, [args.nodes] if args.nodes else [1000, 10000],
                [args.gang] if args.gang else [1, 8, 64, 512], args.vendor, args.runs, args.seed)
        return
    if args.json:
        if args.nodes is None or args.gang is None:
            parser.error("--json needs --nodes and --gang")
        inventory, load_us, nodes = load(args.nodes, args.seed)
        result = run_case(inventory, args.vendor, args.gang, args.per_replica, args.runs)
        result.update(
            event_times(inventory, nodes, args.events),
            load_us_per_object=load_us * 1e6,
            rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
        print(json.dumps(result, sort_keys=True))
        return

    sizes = [args.nodes] if args.nodes else [1000, 10000]
    gangs = [args.gang] if args.gang else [1, 8, 64, 512]
    print(
        "| nodes | gang | cards/replica | placed | p50 ms | p99 ms | peak MiB "
        "| level | racks (bound) | zones (bound) | nodes (bound) |"
    )
    print("|---:|---:|---:|:---:|---:|---:|---:|:---:|---:|---:|---:|")
    events = []
    for size in sizes:
        inventory, load_us, nodes = load(size, args.seed)
        for gang in gangs:
            for per_replica in (8, 4, 2, 1):
                r = run_case(inventory, args.vendor, gang, per_replica, args.runs)
                placed = "yes" if r["placed"] else "no"
                print(
                    f"| {size} | {gang} | {per_replica} | {placed} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                    f"| {r['peak_mib']:.2f} | {r.get('level', '-')} "
                    f"| {r['span_racks']} ({r['lower_bound_racks']}) "
                    f"| {r['span_zones']} ({r['lower_bound_zones']}) "
                    f"| {r['span_nodes']} ({r['lower_bound_nodes']}) |",
                    flush=True,
                )
        events.append((size, load_us, event_times(inventory, nodes, args.events)))
    print()
    print(
        "| nodes | load µs/object | pod event p50 / p99 µs | node change p50 / p99 µs "
        "| node heartbeat p50 / p99 µs |"
    )
    print("|---:|---:|---:|---:|---:|")
    for size, load_us, ev in events:
        print(
            f"| {size} | {load_us * 1e6:.0f} | {ev['pod_event_p50_us']:.0f} / {ev['pod_event_p99_us']:.0f} "
            f"| {ev['node_event_p50_us']:.0f} / {ev['node_event_p99_us']:.0f} "
            f"| {ev['heartbeat_p50_us']:.0f} / {ev['heartbeat_p99_us']:.0f} |"
        )


if __name__ == "__main__":
    main()
