"""The demo's world: a small heterogeneous fleet, the other teams' pods already on it, and the sample jobs.

Pure data and functions (no cluster), so the scenario the demo promises — a job that falls back to
another vendor because its first choice is full, and jobs that stay Pending with a reason — is checked by
unit tests against the real planner, not only by watching `make demo`.

The fleet: two regions, four zones, ten homogeneous racks of eight 8-card servers (Ascend 910B, H100 and
Hygon K100-AI), labelled by each vendor's own conventions (bench/fleet.py). Other teams already hold part
of it: most of the Ascend pool, so the one free Ascend rack goes to the first big Ascend job and later
Ascend-first jobs must fall back.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from fleet import node_dict, pod_dict  # noqa: E402

HUAWEI, NVIDIA, HYGON = 0, 1, 2
"""bench/fleet.py vendor indices."""
VENDOR_RESOURCE = {HUAWEI: "huawei.com/Ascend910", NVIDIA: "nvidia.com/gpu", HYGON: "hygon.com/hcu"}
INSTANCE_TYPE = {HUAWEI: "atlas-800t-a2", NVIDIA: "hgx-h100-8", HYGON: "k100-ai-8"}
"""node.kubernetes.io/instance-type per vendor; pangu-mindspore's nodeSelector names the Atlas one."""
NODES_PER_RACK = 8
CARDS_PER_NODE = 8
OTHER_TEAMS = "other-teams"
"""Namespace of the pods that stand for other teams' work, bound by another scheduler."""
FAKE_NODE = {"kwok.x-k8s.io/node": "fake"}


@dataclass(frozen=True)
class Rack:
    region: str
    zone: str
    name: str
    vendor: int
    busy: str
    """Cards other teams hold on each of the rack's nodes, one digit per node ("8" = whole server)."""


LAYOUT: tuple[Rack, ...] = (
    # cn-east: the Ascend-heavy site. One Ascend rack is free; the other two are nearly full.
    Rack("cn-east", "cn-east-1a", "e1a-r1", HUAWEI, "00000000"),
    Rack("cn-east", "cn-east-1a", "e1a-r2", HUAWEI, "88444466"),
    Rack("cn-east", "cn-east-1a", "e1a-r3", NVIDIA, "88420000"),
    Rack("cn-east", "cn-east-1b", "e1b-r1", HUAWEI, "88888888"),
    Rack("cn-east", "cn-east-1b", "e1b-r2", NVIDIA, "00000000"),
    Rack("cn-east", "cn-east-1b", "e1b-r3", HYGON, "44000000"),
    # cn-north: GPUs and DCUs.
    Rack("cn-north", "cn-north-1a", "n1a-r1", NVIDIA, "88442100"),
    Rack("cn-north", "cn-north-1a", "n1a-r2", HYGON, "88884400"),
    Rack("cn-north", "cn-north-1b", "n1b-r1", HYGON, "00000000"),
    Rack("cn-north", "cn-north-1b", "n1b-r2", NVIDIA, "88888800"),
)

SUBMIT_ORDER = (
    "pangu-mindspore",        # takes the last free Ascend rack
    "moe-rack-local",         # needs a whole free H100 rack
    "llama3-8b-sft",
    "resnet-dcu",
    "resnet50-from-ascendjob",  # a MindCluster AscendJob migrated: 2 x 4 NPUs beside the other team's pods
    "resnet-mindspore-ranktable",
    "elastic-mixed",          # 24 x 2 cards in one zone: no vendor has that alone, so it mixes
    "gpt-pretrain-fallback",  # Ascend first, but no 4 whole Ascend servers are left: falls back
    "deepseek-910c",          # no 910C in this fleet: Pending with the reason
    "huge-stays-pending",     # 32768 cards in one rack: Pending with the reason
)
"""Jobs go in one at a time in this order, each after the operator has decided on the previous one, so
the story is the same on every run; examples not named here follow in file-name order."""

EXPECT_FALLBACK = "gpt-pretrain-fallback"
EXPECT_PENDING = ("deepseek-910c", "huge-stays-pending")


def node_name(rack: Rack, index: int) -> str:
    return f"{rack.name}-n{index + 1}"


def fleet_nodes(layout: Iterable[Rack] = LAYOUT) -> list[dict[str, Any]]:
    """Node objects for kwok to play, labelled like real servers of each vendor plus rack/zone/region."""
    nodes = []
    for rack in layout:
        for i in range(NODES_PER_RACK):
            node = node_dict(node_name(rack, i), rack.vendor, rack.name, rack.zone, rack.region, CARDS_PER_NODE)
            node["metadata"]["labels"]["node.kubernetes.io/instance-type"] = INSTANCE_TYPE[rack.vendor]
            node["metadata"]["annotations"] = dict(FAKE_NODE)
            nodes.append(node)
    return nodes


def split_cards(cards: int) -> list[int]:
    """Pod sizes for `cards` held cards the way teams ask for them: whole servers, rings of 4, 2s and 1s."""
    if not 0 <= cards <= CARDS_PER_NODE:
        raise ValueError(f"busy cards per node must be 0..{CARDS_PER_NODE}, got {cards}")
    if cards == CARDS_PER_NODE:
        return [CARDS_PER_NODE]
    sizes = []
    for size in (4, 2, 1):
        while cards >= size:
            sizes.append(size)
            cards -= size
    return sizes


def other_team_pods(layout: Iterable[Rack] = LAYOUT) -> list[dict[str, Any]]:
    """Running pods, already bound (another scheduler's), that hold the cards `Rack.busy` says."""
    pods = []
    for rack in layout:
        if len(rack.busy) != NODES_PER_RACK:
            raise ValueError(f"rack {rack.name}: busy needs {NODES_PER_RACK} digits, got {rack.busy!r}")
        for i, digit in enumerate(rack.busy):
            node = node_name(rack, i)
            for j, cards in enumerate(split_cards(int(digit))):
                pod = pod_dict(OTHER_TEAMS, f"{node}-{j}", node, VENDOR_RESOURCE[rack.vendor], cards)
                pod["metadata"]["labels"] = {"app": "other-team"}
                pod["spec"]["containers"][0]["image"] = "registry.example.com/serving:latest"
                pod["spec"]["tolerations"] = [{"operator": "Exists"}]
                del pod["status"]  # the API server ignores it on create; kwok writes the real one
                pods.append(pod)
    return pods


def load_examples(directory: Path) -> dict[str, dict[str, Any]]:
    """Every AITrainingJob in `directory`'s YAML files, by name."""
    jobs: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "AITrainingJob":
                jobs[str(doc["metadata"]["name"])] = doc
    return jobs


def submission_order(names: Iterable[str], order: Iterable[str] = SUBMIT_ORDER) -> list[str]:
    """`order`'s names that exist, then the rest alphabetically."""
    present = set(names)
    first = [n for n in order if n in present]
    return first + sorted(present - set(first))


def simulated(job: Mapping[str, Any], run_for: str) -> dict[str, Any]:
    """A copy of `job` whose pods kwok finishes successfully `run_for` (a Go duration) after they run."""
    out = copy.deepcopy(dict(job))
    template = out.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("annotations", {}).update(
        {"suanli.io/simulate": "succeed", "suanli.io/simulate-after": run_for}
    )
    return out
